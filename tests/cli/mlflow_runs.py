#!/usr/bin/env python3
"""The runs of an MLflow experiment, read over the tracking server's REST
API, as one JSON object by run name: mlflow_runs.py URI EXPERIMENT."""
import json
import sys
import urllib.request

uri, experiment = sys.argv[1], sys.argv[2]


def call(path, body=None):
    req = urllib.request.Request(uri + "/api/2.0/mlflow/" + path, data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=30))


exp = call(f"experiments/get-by-name?experiment_name={experiment}")["experiment"]["experiment_id"]
json.dump({r["info"]["run_name"]: r for r in call("runs/search", {"experiment_ids": [exp]})["runs"]}, sys.stdout)
