"""passwd/group parsing (the resolution rules are tested with the bundle)."""

from __future__ import annotations

from containerkit.linux.users import GroupEntry, PasswdEntry, parse_group, parse_passwd


def test_parse_passwd_skips_comments_and_malformed_lines() -> None:
    data = b"# comment\nroot:x:0:0:root:/root:/bin/sh\nbroken:x:abc:0::\nshort:x\n\nsvc:x:5:6::\n"
    assert parse_passwd(data) == [PasswdEntry("root", 0, 0, "/root"), PasswdEntry("svc", 5, 6, "")]


def test_parse_group_members() -> None:
    data = b"root:x:0:\nwheel:x:10:alice,bob\nodd:x:zz:alice\nempty:x:11\n"
    assert parse_group(data) == [
        GroupEntry("root", 0, ()),
        GroupEntry("wheel", 10, ("alice", "bob")),
        GroupEntry("empty", 11, ()),
    ]


def test_missing_files_parse_empty() -> None:
    assert parse_passwd(None) == [] and parse_group(b"") == []
