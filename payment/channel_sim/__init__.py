"""The channel simulator (``xsn channel-sim``, port 8009): plays the payment institutions.

A separate process speaking each channel's protocol: it takes pay requests, "pays" them
(with configurable delay, failure, duplicated and out-of-order notifications), sends signed
notifications with retries until acknowledged, answers order queries, and writes daily
statements in each channel's format. The embedded run and the tests use it; production points
the adapters at the real institutions.
"""
