"""Codes and value types: identifiers with their check characters."""
