"""The broker's seal key pair: created once, kept sealed under the master key, re-wrapped
by a master key rotation, and the only key that opens files sealed to it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from nacl.public import PrivateKey

from jobtoken.broker.secrets.envelope import Envelope, MasterKey
from jobtoken.broker.secrets.seal_keys import SealKeys
from jobtoken.broker.secrets.sealed_file import (
    SealedFileError,
    parse_sealed,
    seal_credential,
    seal_key_id,
)
from jobtoken.broker.store import SqlStore
from support.stores import open_kind


def test_the_key_pair_is_created_on_first_use_and_then_kept(store: SqlStore) -> None:
    keys = SealKeys(store, Envelope(MasterKey.generate()))
    assert keys.current() is None
    key_id, public = keys.ensure_current()
    assert key_id == seal_key_id(public)
    assert keys.ensure_current() == (key_id, public)
    assert [row.key_id for row in store.seal_keys()] == [key_id]


def test_the_private_key_is_stored_sealed_under_the_master_key(store: SqlStore) -> None:
    envelope = Envelope(MasterKey.generate())
    key_id, public = SealKeys(store, envelope).ensure_current()
    (row,) = store.seal_keys()
    private = envelope.decrypt(f"seal-key:{key_id}", row.sealed)
    assert bytes(PrivateKey(private).public_key) == public
    assert private not in row.sealed
    assert envelope.key_id_of(row.sealed) == envelope.current.key_id


def test_processes_creating_it_at_once_store_one_key(
    store_factory: tuple[str, Path, str],
) -> None:
    master = MasterKey.generate()
    stores = [open_kind(*store_factory) for _ in range(4)]
    results: list[tuple[str, bytes]] = []
    barrier = threading.Barrier(len(stores))

    def create(store: SqlStore) -> None:
        barrier.wait()
        results.append(SealKeys(store, Envelope(master)).ensure_current())

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len(set(results)) == 1
        assert len(stores[0].seal_keys()) == 1
    finally:
        for s in stores:
            s.close()


def test_it_opens_a_file_sealed_to_it(store: SqlStore) -> None:
    keys = SealKeys(store, Envelope(MasterKey.generate()))
    _, public = keys.ensure_current()
    sealed = parse_sealed(seal_credential(b"sk_live_x", public).encode(), "api.sealed")
    assert keys.open(sealed) == b"sk_live_x"


def test_a_file_sealed_for_another_broker_names_the_key_this_one_holds(store: SqlStore) -> None:
    keys = SealKeys(store, Envelope(MasterKey.generate()))
    mine, _ = keys.ensure_current()
    other = PrivateKey.generate()
    data = seal_credential(b"sk_live_x", bytes(other.public_key)).encode()
    with pytest.raises(SealedFileError) as refused:
        keys.open(parse_sealed(data, "gitops/api.sealed"))
    text = str(refused.value)
    assert "gitops/api.sealed" in text
    assert seal_key_id(bytes(other.public_key)) in text
    assert mine in text
    assert "another broker" in text
    assert "jobtoken broker seal-key" in text


def test_before_seal_key_ran_a_file_is_refused_with_what_to_run(store: SqlStore) -> None:
    keys = SealKeys(store, Envelope(MasterKey.generate()))
    data = seal_credential(b"x", bytes(PrivateKey.generate().public_key)).encode()
    with pytest.raises(SealedFileError, match=r"none yet.*jobtoken broker seal-key"):
        keys.open(parse_sealed(data, "api.sealed"))


def test_a_wrong_master_key_is_reported_not_a_crash(store: SqlStore) -> None:
    _, public = SealKeys(store, Envelope(MasterKey.generate())).ensure_current()
    stranger = SealKeys(store, Envelope(MasterKey.generate()))
    sealed = parse_sealed(seal_credential(b"x", public).encode(), "api.sealed")
    with pytest.raises(SealedFileError, match=r"seal key seal-.*previous_master_key_files"):
        stranger.open(sealed)


def test_rewrapping_moves_it_to_the_new_master_key_and_it_still_opens(store: SqlStore) -> None:
    """What `jobtoken broker rotate-master-key` does to every record of SEALED_TABLES."""
    old, new = MasterKey.generate(), MasterKey.generate()
    _, public = SealKeys(store, Envelope(old)).ensure_current()
    rotating = Envelope(new, (old,))
    (record,) = [r for r in store.sealed_records() if r.table == "seal_keys"]
    assert store.replace_sealed(record, rotating.rewrap(record.record_id, record.sealed))
    (row,) = store.seal_keys()
    assert rotating.key_id_of(row.sealed) == new.key_id
    sealed = parse_sealed(seal_credential(b"after", public).encode(), "api.sealed")
    assert SealKeys(store, Envelope(new)).open(sealed) == b"after"
