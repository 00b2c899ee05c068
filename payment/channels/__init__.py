"""Payment channels: one adapter per institution, speaking its real protocol shape.

Each adapter verifies what the institution sends (signature, timestamp window, decryption)
before anything is posted, and answers with the acknowledgement that institution expects.
The channel simulator (``payment.channel_sim``) plays the institutions in the embedded run and
the tests; production configures the institutions' keys and URLs instead.
"""
