"""Network isolation of notebook pods, checked on the objects: the static
policies of the sessions namespace (ops/k8s/base/network-policies.yaml), the
per-notebook policies the worker builds, and the allow-list setting.

No CNI runs here, so nothing shows a packet dropped. `egress_allows` reads
the policies the way the NetworkPolicy API defines them (a pod selected by
no Egress policy is not isolated; one selected by any may send what some
rule of theirs allows; ipBlock `except` carves out of `cidr`) for
destinations outside the cluster's pods, given by address."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from reconciler.runtime.base import SessionSpec, WorkloadSpec
from reconciler.runtime.kubernetes import names as n
from reconciler.runtime.kubernetes import objects
from reconciler.runtime.kubernetes.pool import warm_pod
from reconciler.runtime.kubernetes.settings import KubernetesSettings, KubernetesSettingsError

ROOT = Path(__file__).resolve().parents[3]
POLICIES = ROOT / "ops" / "k8s" / "base" / "network-policies.yaml"
SESSIONS = "notebooks-sessions"
KS = KubernetesSettings(namespace=SESSIONS)
PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"]
MONITORING = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]

Obj = dict[str, Any]


def static() -> list[Obj]:
    return [d for d in yaml.safe_load_all(POLICIES.read_text()) if d]


def policy(name: str, namespace: str = SESSIONS) -> Obj:
    (found,) = [
        p
        for p in static()
        if p["metadata"]["name"] == name and p["metadata"]["namespace"] == namespace
    ]
    return found


def spec(mode: str = "standalone") -> SessionSpec:
    return SessionSpec("NB1", "S1", "tok", WorkloadSpec(mode=mode), "/notebooks/NB1")


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for e in selector.get("matchExpressions", []):
        assert e["operator"] == "In", e  # the only operator used here
        if labels.get(e["key"]) not in e["values"]:
            return False
    return True


def in_block(address: Any, block: Obj | None) -> bool:
    if block is None:  # a pod or namespace selector: never an address outside the cluster
        return False
    excepted = any(address in ipaddress.ip_network(x) for x in block.get("except", []))
    return address in ipaddress.ip_network(block["cidr"]) and not excepted


def egress_allows(
    policies: list[Obj], labels: dict[str, str], ip: str, port: int, protocol: str = "TCP"
) -> bool:
    address = ipaddress.ip_address(ip)
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == SESSIONS
        and "Egress" in p["spec"]["policyTypes"]
        and selects(p["spec"]["podSelector"], labels)
    ]
    assert selecting, "every pod of the sessions namespace is isolated for egress"
    for p in selecting:
        for rule in p["spec"].get("egress", []):
            ports = rule.get("ports")
            if ports and not any(
                x.get("protocol", "TCP") == protocol and x["port"] == port for x in ports
            ):
                continue
            peers = rule.get("to", [{"ipBlock": {"cidr": "0.0.0.0/0"}}])
            if any(in_block(address, peer.get("ipBlock")) for peer in peers):
                return True
    return False


def marimo_labels() -> dict[str, str]:
    return n.session_labels("NB1", "S1", n.MARIMO)


def sail_labels() -> dict[str, str]:
    return n.session_labels("NB1", "S1", n.SAIL)


# -- the namespace's static policies -----------------------------------------


def test_sessions_namespace_denies_ingress_and_egress_by_default() -> None:
    for name, kind in (("default-deny-ingress", "Ingress"), ("default-deny-egress", "Egress")):
        p = policy(name)
        assert p["spec"] == {"podSelector": {}, "policyTypes": [kind]}


def test_dns_is_allowed_on_port_53_only_to_kube_system_and_the_metadata_dns() -> None:
    p = policy("allow-dns-egress")
    assert p["spec"]["podSelector"] == {} and p["spec"]["policyTypes"] == ["Egress"]
    (rule,) = p["spec"]["egress"]
    assert rule["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert rule["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}},
        {"ipBlock": {"cidr": "169.254.169.254/32"}},
    ]


def test_the_public_internet_is_allowed_without_any_private_range() -> None:
    p = policy("allow-public-egress")
    assert p["spec"]["podSelector"] == {} and p["spec"]["policyTypes"] == ["Egress"]
    assert p["spec"]["egress"] == [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE}}]}]


@pytest.mark.parametrize(
    ("ip", "port", "protocol", "allowed"),
    [
        ("169.254.169.254", 80, "TCP", False),  # cloud metadata: node credentials
        ("169.254.170.23", 80, "TCP", False),  # EKS Pod Identity agent
        ("169.254.169.254", 53, "UDP", True),  # GKE Cloud DNS answers there
        ("10.96.0.1", 443, "TCP", False),  # the Kubernetes API Service
        ("10.0.12.7", 8080, "TCP", False),  # the service's api pod
        ("10.0.12.8", 8083, "TCP", False),  # its metrics
        ("172.20.0.5", 5432, "TCP", False),  # a private database
        ("192.168.1.1", 22, "TCP", False),
        ("100.64.3.4", 443, "TCP", False),
        ("10.0.0.10", 53, "UDP", False),  # port 53 is not open on private addresses
        ("151.101.0.223", 443, "TCP", True),  # pypi.org
        ("52.216.0.1", 443, "TCP", True),  # S3
        ("8.8.8.8", 53, "UDP", True),
        ("2a04:4e42::223", 443, "TCP", False),  # IPv6 is not opened
        ("fd00:ec2::254", 80, "TCP", False),  # AWS metadata over IPv6
    ],
)
def test_what_a_notebook_pod_can_reach(ip: str, port: int, protocol: str, allowed: bool) -> None:
    policies = static() + objects.network_policies("NB1", KS)
    warm = warm_pod(WorkloadSpec(), KS, "abc")["metadata"]["labels"]
    for labels in (marimo_labels(), sail_labels(), warm):
        assert egress_allows(policies, labels, ip, port, protocol) is allowed, labels


# -- the worker's per-notebook policies --------------------------------------


def test_marimo_may_reach_sail_on_sails_port_and_sail_pods_one_another() -> None:
    marimo_to_sail = policy("allow-marimo-to-sail-egress")["spec"]
    assert marimo_to_sail == {
        "podSelector": {"matchLabels": {n.COMPONENT: n.MARIMO}},
        "policyTypes": ["Egress"],
        "egress": [
            {
                "to": [{"podSelector": {"matchLabels": {n.COMPONENT: n.SAIL}}}],
                "ports": [{"protocol": "TCP", "port": n.SAIL_PORT}],
            }
        ],
    }
    sail_pods = {
        "matchExpressions": [
            {"key": n.COMPONENT, "operator": "In", "values": [n.SAIL, n.SAIL_WORKER]}
        ]
    }
    assert policy("allow-sail-to-sail-egress")["spec"] == {
        "podSelector": sail_pods,
        "policyTypes": ["Egress"],
        "egress": [{"to": [{"podSelector": sail_pods}]}],
    }


def test_another_notebooks_sail_admits_neither_this_marimo_nor_this_sail() -> None:
    """The static egress reaches any Sail pod; each Sail's ingress is what
    keeps notebooks apart."""
    _, sail = objects.network_policies("NB2", KS)
    assert selects(sail["spec"]["podSelector"], n.session_labels("NB2", "S1", n.SAIL))
    (rule,) = sail["spec"]["ingress"]
    for labels in (marimo_labels(), sail_labels(), n.session_labels("NB1", "S1", n.SAIL_WORKER)):
        assert not any(selects(peer["podSelector"], labels) for peer in rule["from"]), labels


def test_per_notebook_policies_add_no_egress_without_an_allow_list() -> None:
    for p in objects.network_policies("NB1", KS):
        assert p["spec"]["policyTypes"] == ["Ingress", "Egress"]
        assert p["spec"]["egress"] == []


def test_the_allow_list_opens_its_private_ranges_to_marimo_and_sail() -> None:
    ks = KubernetesSettings(namespace=SESSIONS, session_egress_allow=("10.20.0.0/16", "fd12::/64"))
    allowed = {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}, {"ipBlock": {"cidr": "fd12::/64"}}]}
    for p in objects.network_policies("NB1", ks):
        assert p["spec"]["egress"][-1] == allowed
    policies = static() + objects.network_policies("NB1", ks)
    for labels in (marimo_labels(), sail_labels()):
        assert egress_allows(policies, labels, "10.20.3.4", 5432)
        assert egress_allows(policies, labels, "fd12::9", 443)
        assert not egress_allows(policies, labels, "10.21.0.1", 5432)
        assert not egress_allows(policies, labels, "169.254.169.254", 80)
    # another notebook's policies say nothing about this one's pods
    other = n.session_labels("NB2", "S1", n.MARIMO)
    assert not egress_allows(policies, other, "10.20.3.4", 5432)


def test_a_cluster_mode_driver_may_reach_the_api_server_when_its_address_is_set() -> None:
    ks = KubernetesSettings(namespace=SESSIONS, api_server_cidrs=("10.0.0.2/32",))
    (driver,) = objects.driver_egress("NB1", ks)
    assert driver["metadata"]["name"] == "nb-nb1-sail-driver"
    assert driver["metadata"]["labels"] == n.notebook_labels("NB1")
    assert driver["spec"] == {
        "podSelector": {"matchLabels": {n.NOTEBOOK: "NB1", n.COMPONENT: n.SAIL}},
        "policyTypes": ["Egress"],
        "egress": [
            {
                "to": [{"ipBlock": {"cidr": "10.0.0.2/32"}}],
                "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}],
            }
        ],
    }
    assert driver in objects.session_objects(spec("cluster"), ks)
    policies = static() + objects.session_objects(spec("cluster"), ks)
    policies = [p for p in policies if p["kind"] == "NetworkPolicy"]
    assert egress_allows(policies, sail_labels(), "10.0.0.2", 443)
    workers = n.session_labels("NB1", "S1", n.SAIL_WORKER)
    assert not egress_allows(policies, workers, "10.0.0.2", 443)
    assert not egress_allows(policies, marimo_labels(), "10.0.0.2", 443)
    # standalone Sail holds no token: no such policy; nor without the setting
    assert not objects.driver_egress("NB1", KS)
    kinds = [o["metadata"]["name"] for o in objects.session_objects(spec(), ks)]
    assert "nb-nb1-sail-driver" not in kinds


def test_policies_with_the_allow_list_and_the_driver_egress_are_valid() -> None:
    ks = KubernetesSettings(
        namespace=SESSIONS,
        session_egress_allow=("10.20.0.0/16", "fd12::/64"),
        api_server_cidrs=("10.0.0.2/32",),
    )
    built = [
        o for o in objects.session_objects(spec("cluster"), ks) if o["kind"] == "NetworkPolicy"
    ]
    assert len(built) == 3
    for obj in built:
        for version in ("1.30.0", "1.37.0"):
            kubernetes_validate.validate(obj, version, strict=True)


# -- settings ----------------------------------------------------------------


def test_allow_list_settings_are_read_and_normalized() -> None:
    ks = KubernetesSettings.from_env(
        {
            "NOTEBOOKS_K8S_SESSION_EGRESS_ALLOW": " 10.20.0.0/16, 192.168.5.7 ,,fd12::/64",
            "NOTEBOOKS_K8S_API_SERVER_CIDRS": "172.16.0.10/32",
        }
    )
    assert ks.session_egress_allow == ("10.20.0.0/16", "192.168.5.7/32", "fd12::/64")
    assert ks.api_server_cidrs == ("172.16.0.10/32",)
    empty = KubernetesSettings.from_env({})
    assert empty.session_egress_allow == () and empty.api_server_cidrs == ()


@pytest.mark.parametrize("bad", ["10.20.0.0/33", "db.internal", "10.20.1.0/16", "10.0.0.0/8;"])
def test_a_bad_cidr_is_refused_at_load_naming_the_variable(bad: str) -> None:
    for name in ("SESSION_EGRESS_ALLOW", "API_SERVER_CIDRS"):
        with pytest.raises(KubernetesSettingsError) as err:
            KubernetesSettings.from_env({f"NOTEBOOKS_K8S_{name}": f"10.1.0.0/16,{bad}"})
        assert f"NOTEBOOKS_K8S_{name}" in str(err.value) and repr(bad) in str(err.value)


# -- the service's own pods: public ports open, metrics only to Prometheus ---


@pytest.mark.parametrize(
    ("name", "public", "metrics"),
    [
        ("notebooks-api", 8080, 8083),
        ("notebooks-proxy", 8081, 8084),
        ("notebooks-worker", None, 8082),
    ],
)
def test_metrics_ports_are_open_to_the_monitoring_namespace_only(
    name: str, public: int | None, metrics: int
) -> None:
    p = policy(name, "notebooks")
    assert p["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": name}}
    assert p["spec"]["policyTypes"] == ["Ingress"]
    open_to = {}
    for rule in p["spec"]["ingress"]:
        for port in rule["ports"]:
            assert port["protocol"] == "TCP"
            assert port["port"] not in open_to, "one rule per port"
            open_to[port["port"]] = rule.get("from")
    expected: dict[int, Any] = {metrics: MONITORING}
    if public is not None:
        expected[public] = None  # every source
    assert open_to == expected


def test_the_worker_pods_sail_creates_are_the_drivers_peers() -> None:
    """Sail sets its own labels over the worker template's, the component
    among them (sail_worker.py models it from Sail's source): the policies
    must select the pods as Sail labels them, or a driver and its workers
    cannot reach each other."""
    from sail_worker import sail_worker_pod

    driver = objects.sail_pod(spec("cluster"), KS)
    worker = sail_worker_pod(driver)["metadata"]["labels"]
    assert worker[n.COMPONENT] == "worker" == n.SAIL_WORKER
    driver_labels = driver["metadata"]["labels"]
    _, sail = objects.network_policies("NB1", KS)
    assert selects(sail["spec"]["podSelector"], worker)  # its ingress is this notebook's
    (rule,) = sail["spec"]["ingress"]
    for source in (worker, driver_labels):
        assert any(selects(peer["podSelector"], source) for peer in rule["from"]), source
    to_sail = policy("allow-sail-to-sail-egress")["spec"]
    for source, destination in ((worker, driver_labels), (driver_labels, worker)):
        assert selects(to_sail["podSelector"], source)
        assert selects(to_sail["egress"][0]["to"][0]["podSelector"], destination)
