"""Only canonical paths pass: nothing a normaliser would change can reach a service."""

from __future__ import annotations

import pytest

from gateway.edge.paths import check_path
from gateway.edge.problems import BadPath, PathTraversal


@pytest.mark.parametrize("path", ["/", "/seal/livez", "/seal/", "/identity/password/reset/AbC-_~.x",
                                  "/licenses/%E7%94%B5%E5%AD%90", "/a/b:c@d!$&'()*+,;=", "/x/a%20b"])
def test_canonical_paths_pass(path):
    check_path(path)


@pytest.mark.parametrize("path", ["/seal/../identity", "/seal/..", "/seal/./x", "/seal/%2e%2e/identity",
                                  "/seal/%2E%2e/identity", "/seal/.%2e/identity", "/seal/x%2fy", "/seal/x%2F..",
                                  "/seal/%252e%252e/identity", "/seal/%25", "/seal/a%5cb"])
def test_traversal_shapes_are_refused(path):
    with pytest.raises(PathTraversal):
        check_path(path)


@pytest.mark.parametrize("path", ["seal/x", "*", "http://evil.example/x", "/seal//x", "/seal/x\\y", "/seal/%zz",
                                  "/seal/%4", "/seal/%00", "/seal/%0d%0aX-Injected:%201", "/seal/%69dentity",
                                  "/seal/%ff", "/seal/é", "/seal/a b", "/" + "a" * 5000, "/seal/x?y"])
def test_other_odd_paths_are_refused(path):
    with pytest.raises(BadPath):
        check_path(path)
