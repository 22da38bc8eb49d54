"""The notebook a new notebook starts from: its first cell connects to the
notebook's own Sail server through SPARK_REMOTE (set by the runtime)."""

from __future__ import annotations

NOTEBOOK_FILE = "notebook.py"

TEMPLATE = """import marimo

app = marimo.App()


@app.cell
def _():
    import os

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(os.environ["SPARK_REMOTE"]).getOrCreate()
    return (spark,)


@app.cell
def _(spark):
    spark.sql("select 1 + 1 as two").toPandas()
    return


if __name__ == "__main__":
    app.run()
"""
