"""A no-op splunklib StreamingCommand: the anchor bench/splunk.py compares vtlookup with.
Copied into a built app's bin/ by the benchmark; uses that app's vendored splunklib."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from splunklib.searchcommands import Configuration, StreamingCommand, dispatch  # noqa: E402


@Configuration(distributed=False)
class NoopCommand(StreamingCommand):
    def stream(self, records):  # noqa: ANN001, ANN201
        yield from records


if __name__ == "__main__":
    dispatch(NoopCommand, sys.argv, sys.stdin, sys.stdout, __name__)
