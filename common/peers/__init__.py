"""Clients of the other nodes, one each, for every service that calls them: client-credentials
tokens from identity (:mod:`.credentials`), the seal node (:mod:`.seal_client`) and the message
hub (:mod:`.notifier`). Each is an interface with an HTTP implementation and an in-memory one."""
