#!/usr/bin/env python3
"""Interoperability check of the Quiver worker protocol with a client that is
not ours: pyarrow.flight lists the flights, sends hand-written JSON tickets,
and compares the answers with counts pandas computes from the same files.

Usage: flight_client.py --endpoints grpc://127.0.0.1:P1,grpc://127.0.0.1:P2
                        --token T --data /path/to/towers/ --dataset towers
Exit status 0 when every check holds; the failures are printed otherwise.
"""
import argparse
import json
import sys

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.flight as flight
import pandas as pd

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def do_get(client, options, ticket):
    reader = client.do_get(flight.Ticket(json.dumps(ticket).encode()), options)
    return reader.read_all()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoints", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--dataset", default="towers")
    a = p.parse_args()
    endpoints = a.endpoints.split(",")
    options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {a.token}".encode())])
    clients = [flight.FlightClient(e) for e in endpoints]

    # 1. ListFlights: the dataset is there on every worker, shards 0..n.
    shards = set()
    for c in clients:
        infos = list(c.list_flights(options=options))
        names = [i.descriptor.path[0].decode() for i in infos]
        check(a.dataset in names, f"list_flights names {a.dataset} ({names})")
        info = next(i for i in infos if i.descriptor.path[0].decode() == a.dataset)
        meta = json.loads(info.app_metadata)
        shards.add(meta["shard"]["shard"])
        check(meta["shard"]["shards"] == len(clients), "shard count equals the number of workers")
        check(info.schema.field("lon").type == pa.float64(), "logical schema has lon as float64")
        # The endpoint's default ticket is readable as is.
        t = c.do_get(info.endpoints[0].ticket, options).read_all()
        check(t.num_rows > 0, "default ticket of the flight info answers")
    check(shards == set(range(len(clients))), f"every shard answers once ({sorted(shards)})")

    # 2. A wrong token is refused.
    bad = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer wrong")])
    try:
        list(clients[0].list_flights(options=bad))
        check(False, "wrong token refused")
    except flight.FlightUnauthenticatedError:
        check(True, "wrong token refused with Unauthenticated")

    # 3. Reference from the files themselves.
    df = ds.dataset(a.data, format="parquet").to_table(columns=["radio", "range", "created"]).to_pandas()
    year = pd.to_datetime(df["created"], unit="s").dt.year.clip(2003, 2021)

    # 4. Hand-written tickets, summed over the workers.
    def summed(ticket, key):
        out = {}
        total = 0
        for c in clients:
            t = do_get(c, options, ticket)
            md = t.schema.metadata
            check(md[b"quiver.view"] == b"histogram", "answer schema names its view")
            total += int(md[b"quiver.total"])
            for label, count in zip(t.column("label").to_pylist(), t.column("count").to_pylist()):
                out[label] = out.get(label, 0) + count
        return out, total

    t1 = {"version": 1, "dataset": a.dataset,
          "filters": {"radio": {"categories": ["LTE", "NR"]}},
          "views": [{"type": "histogram", "dimension": "created"}]}
    got, total = summed(t1, "created")
    check(total == len(df), f"totals add up to the file rows ({total} vs {len(df)})")
    sel = year[df["radio"].isin(["LTE", "NR"])].value_counts()
    want = {str(y): int(sel.get(y, 0)) for y in range(2003, 2022)}
    got_years = {k: v for k, v in got.items() if k != "(missing)"}
    check(got_years == want, "year histogram of LTE+NR matches pandas")
    if got_years != want:
        print("  got ", got_years, "\n  want", want)

    # Crossfilter: the radio histogram ignores the radio filter but applies the year brush.
    t2 = {"version": 1, "dataset": a.dataset,
          "filters": {"radio": {"categories": ["GSM"]},
                      "created": {"range": {"min": 1420070400, "max": 1514764800}}},
          "views": [{"type": "histogram", "dimension": "radio"}]}
    got, _ = summed(t2, "radio")
    brushed = df[(df["created"] >= 1420070400) & (df["created"] < 1514764800)]
    want = brushed["radio"].value_counts().to_dict()
    check(all(got.get(k, 0) == int(v) for k, v in want.items()) and
          sum(v for k, v in got.items() if k != "(missing)") == len(brushed),
          "radio histogram under a 2015-2017 brush matches pandas (own filter ignored)")

    # 5. A sample carries each row's exact values as typed detail.* columns,
    #    titled in their field metadata, equal to a row of the files.
    full = ds.dataset(a.data, format="parquet").to_table(
        columns=["radio", "mcc", "net", "range", "created", "lon", "lat"]).to_pandas()
    t3 = {"version": 1, "dataset": a.dataset,
          "filters": {"radio": {"categories": ["LTE"]}},
          "viewport": {"west": -180, "south": -85, "east": 180, "north": 85},
          "views": [{"type": "sample", "limit": 40}]}
    want_types = {"detail.radio": pa.string(), "detail.mcc": pa.int64(), "detail.net": pa.int64(),
                  "detail.range": pa.int64(), "detail.created": pa.timestamp("s")}
    matched_rows = 0
    for c in clients:
        t = do_get(c, options, t3)
        check(t.schema.metadata[b"quiver.view"] == b"sample", "sample answer names its view")
        types = {f.name: f.type for f in t.schema if f.name.startswith("detail.")}
        check(types == want_types, f"sample detail columns and types ({types})")
        rng = t.schema.field("detail.range")
        check(rng.metadata.get(b"quiver.unit") == b"m" and rng.metadata.get(b"quiver.title") == b"Signal range",
              "detail.range is titled, in metres")
        rows = t.to_pylist()
        check(len(rows) == 40, f"40 sampled rows ({len(rows)})")
        for r in rows:
            created = int(r["detail.created"].timestamp()) if r["detail.created"] is not None else None
            hit = full[(full["radio"] == r["detail.radio"]) & (full["mcc"] == r["detail.mcc"]) &
                       (full["net"] == r["detail.net"]) & (full["range"] == r["detail.range"]) &
                       (full["created"] == created) &
                       ((full["lon"] - r["lon"]).abs() < 1e-6) & ((full["lat"] - r["lat"]).abs() < 1e-6)]
            matched_rows += int(len(hit) > 0 and r["category"] == "LTE")
    check(matched_rows == 40 * len(clients), f"every sampled row is a row of the files ({matched_rows})")

    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        sys.exit(1)
    print("all interop checks passed")


if __name__ == "__main__":
    main()
