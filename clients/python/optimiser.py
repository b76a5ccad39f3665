#!/usr/bin/env python3
"""A central optimiser's side of the fleet's MQTT contract v1 (src/fleet/contract.ts), in Python.

Builds a schedule in pandas' `to_json(orient="split")` shape (plain dicts here, so pandas is not
needed), publishes it as a ScheduleRequest to `<prefix>/<site>/schedule` with QoS 1, waits for
the gateway's ack on `<prefix>/<site>/schedule/ack`, prints it and exits 0 when it says
`accepted` (1 otherwise, 2 when no ack came in time). Works with paho-mqtt 1.6 (Debian 12's
python3-paho-mqtt) and 2.x.

    python3 clients/python/optimiser.py --host 127.0.0.1 --port 1883 --site depot-1

The columns are the package's (see the README's Schedules): `ev_<vehicle>_kw` per charger and
`battery_charge_kw` / `battery_discharge_kw`; the gateway's asset map turns `<vehicle>` and
`battery` into its asset ids. With --bad, the schedule carries a negative power (to see a
rejection with the row and column named).
"""

import argparse
import json
import sys
import threading
import uuid
from datetime import datetime, timedelta, timezone

import paho.mqtt.client as mqtt


def build_schedule(slots, slot_minutes, bad=False):
    """Split JSON: what `df.to_json(orient="split", date_format="iso")` gives for a frame indexed
    by slot start (UTC) with one column per setpoint.

    With pandas:  payload = json.loads(df.to_json(orient="split", date_format="iso"))
    """
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = now - timedelta(seconds=now.second)  # this minute: the first slot is in force now
    index = [
        (start + timedelta(minutes=slot_minutes * i)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        for i in range(slots)
    ]
    columns = ["ev_v01_kw", "ev_v02_kw", "battery_charge_kw", "battery_discharge_kw"]
    data = []
    for i in range(slots):
        ev = 7.0 if i % 2 == 0 else 11.0
        data.append([ev, ev - 1.0, 5.0, 0.0])
    if bad:
        data[0][0] = -5.0
    return {"columns": columns, "index": index, "data": data}


def make_client(client_id):
    """paho 2.x wants the callback API version first; 1.6 has no such argument."""
    version = getattr(mqtt, "CallbackAPIVersion", None)
    if version is not None:
        return mqtt.Client(version.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    return mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv311)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--site", required=True, help="the site id of the gateway")
    ap.add_argument("--prefix", default="qe/v1", help="topic prefix (default qe/v1)")
    ap.add_argument("--schedule-id", default=None, help="default: a new uuid")
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--slot-minutes", type=int, default=15)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the ack")
    ap.add_argument("--bad", action="store_true", help="send a schedule the gateway rejects")
    args = ap.parse_args(argv)

    schedule_id = args.schedule_id or "py-" + uuid.uuid4().hex[:12]
    request = {
        "scheduleId": schedule_id,
        "schedule": build_schedule(args.slots, args.slot_minutes, args.bad),
        "sentAt": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
    }
    topic = "%s/%s/schedule" % (args.prefix, args.site)
    ack_topic = topic + "/ack"
    done = threading.Event()
    result = {}

    def on_connect(client, userdata, flags, rc, *rest):
        # rc: an int in paho 1.6, a ReasonCode in 2.x; both compare to 0 on success.
        if rc != 0:
            result["error"] = "connect refused: %s" % rc
            done.set()
            return
        client.subscribe(ack_topic, qos=1)

    def on_subscribe(client, userdata, mid, *rest):
        # Published once the ack subscription is in place, so the ack cannot be missed.
        client.publish(topic, json.dumps(request), qos=1)

    def on_message(client, userdata, msg):
        try:
            ack = json.loads(msg.payload.decode("utf-8"))
        except ValueError:
            return
        if ack.get("requestId") != schedule_id:
            return  # another optimiser's ack on the same site
        result["ack"] = ack
        done.set()

    client = make_client("qe-optimiser-" + uuid.uuid4().hex[:8])
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(args.host, args.port, keepalive=30)
    except OSError as e:
        print("cannot connect to %s:%d: %s" % (args.host, args.port, e), file=sys.stderr)
        return 2
    client.loop_start()
    try:
        done.wait(args.timeout)
    finally:
        client.disconnect()
        client.loop_stop()

    if "error" in result:
        print(result["error"], file=sys.stderr)
        return 2
    ack = result.get("ack")
    if ack is None:
        print("no ack for %s on %s within %g s" % (schedule_id, ack_topic, args.timeout),
              file=sys.stderr)
        return 2
    print(json.dumps(ack, indent=2))
    return 0 if ack.get("status") == "accepted" else 1


if __name__ == "__main__":
    sys.exit(main())
