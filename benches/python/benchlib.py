"""Shared by the Python benchmarks: print figures and write them as flat JSON."""
import json


def emit(res, path, unit=""):
    for k, v in res.items():
        print(f"  {k:<44} {v:>12.3f} {unit}".rstrip())
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
