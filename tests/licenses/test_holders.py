"""Resolving a holder from identity's userinfo (the person's own token)."""

from __future__ import annotations

import pytest

from licenses.holders import IdentityHolderDirectory, NotAHolder, holder_from_userinfo


def test_userinfo_gives_id_number_and_represented_organisations(h):
    holder = holder_from_userinfo("s1", {"sub": "s1", "id_number": h.ZHAO.lower(), "organisations": [
        {"credit_code": h.ORG, "role": "legal_representative"}, {"credit_code": h.BUREAU, "role": "member"},
        {"credit_code": "bad", "role": "agent"}]})
    assert holder.id_number == h.ZHAO and holder.organisations == (h.ORG,) and holder.name is None


@pytest.mark.parametrize(("name", "kept"), [("赵六", "赵六"), ("  赵六 ", "赵六"), ("", None), (7, None),
                                            ("名" * 300, "名" * 255)])
def test_userinfo_gives_the_name_pages_show_for_who_granted_or_revoked(h, name, kept):
    holder = holder_from_userinfo("s1", {"sub": "s1", "id_number": h.ZHAO, "name": name})
    assert holder.name == kept


@pytest.mark.parametrize("claims", [
    {"sub": "other", "id_number": "11010519491231002X"},
    {"sub": "s1", "id_number": "1101**********002X"},  # masked: the token lacked idcard:full
    {"sub": "s1"},
])
def test_userinfo_without_a_full_id_number_is_not_a_holder(claims):
    with pytest.raises(NotAHolder):
        holder_from_userinfo("s1", claims)


def test_the_directory_asks_identity_with_the_persons_token(make_app, serve_app, tokens, h):
    from flask import Flask, jsonify, request

    from common.http import ServiceClient

    seen = []
    fake = Flask("identity-userinfo")

    @fake.get("/oauth/userinfo")
    def userinfo():
        seen.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != "Bearer good":
            return jsonify(error="invalid_token"), 401
        return jsonify(sub="s1", id_number=h.ZHANG, organisations=[])

    directory = IdentityHolderDirectory(ServiceClient(serve_app(fake)))
    assert directory.resolve("s1", "good").id_number == h.ZHANG
    assert directory.resolve("s1", "good").id_number == h.ZHANG  # cached
    with pytest.raises(NotAHolder):
        directory.resolve("s1", "bad")
    assert seen == ["Bearer good", "Bearer bad"]
