"""A worker-side JACK client for the netjack2 tests, run as its own process (one JACK server per process).

``python -m tests.nodes.probe_client SERVER``: registers ``out_1`` (a copy of ``system:capture_1``, when the
node receives audio from the master) and ``out_2`` (this server's frame counter, ``frame mod 2**24`` as
float32, exact), keeps them connected to ``system:playback_1``/``_2`` (the net driver makes those ports
anew each time a master takes the node), prints ``ready`` and runs until stdin closes or SIGTERM.
"""

import argparse
import contextlib
import signal
import sys
import threading

import jack
import numpy as np

from latentd.outputs.jack_out import port_names

COUNTER_MODULO = 1 << 24  # float32 holds every integer below 2**24 exactly


def main() -> None:
    """Run the probe client until stdin closes or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("server", help="JACK server name")
    args = parser.parse_args()
    client = jack.Client("probe", servername=args.server, no_start_server=True)
    inport = client.inports.register("in")
    echo = client.outports.register("out_1")
    counter = client.outports.register("out_2")
    ramp = np.arange(8192, dtype=np.int64)

    def process(frames: int) -> None:
        echo.get_array()[:] = inport.get_array()
        counter.get_array()[:] = (client.last_frame_time + ramp[:frames]) % COUNTER_MODULO

    client.set_process_callback(process)
    client.activate()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    print("ready", flush=True)
    seen: set[str] = set()
    while not stop.wait(0.05):
        # The net driver makes its system ports anew each time a master takes the node: connect then.
        listed = port_names(client, "system:")
        if listed is None:
            continue  # the ports were leaving while listed (the master went): look again
        system = set(listed)
        if system and system != seen:
            pairs = [
                ("system:capture_1", inport),
                (echo, "system:playback_1"),
                (counter, "system:playback_2"),
            ]
            for source, dest in pairs:
                # No capture port: the node receives nothing from the master.
                with contextlib.suppress(jack.JackError):
                    client.connect(source, dest)
        seen = system
    client.deactivate()
    client.close()


if __name__ == "__main__":
    main()
