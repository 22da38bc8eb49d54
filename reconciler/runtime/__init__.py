"""Runtime backends (`local`, `kubernetes`) behind one small interface."""
