"""Cryptography and keys: SM2/SM3/SM4 (gm), the encrypted key store, Merkle proofs and
signed-note checkpoints."""
