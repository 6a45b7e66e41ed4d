"""Evaluation suites (installed as `mmrag.evals`); each writes `runs/<suite>/<timestamp>/`."""
