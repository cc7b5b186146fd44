"""One contract for both object stores (SQLite and a real PostgreSQL, tests/pg.py): keyset
pagination with date_added strictly increasing even across processes and store instances, no
object missed or repeated while others are written, `next` tokens that work on another
instance (another replica), added_after with next, the version filters, and query plans that
walk the (collection, date_added, id) index (what keeps the first page of a 1,000,000-object
collection in tens of milliseconds)."""

from __future__ import annotations

import json
import multiprocessing
import uuid
from typing import Any, Dict, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.core import database
from taxii.pagination import decode_next, encode_next
from taxii.store import BadToken, ObjectStore, Store, open_store

COLL = str(uuid.UUID(int=7, version=4))
OTHER = str(uuid.UUID(int=8, version=4))


def obj(n: int, modified: str = "2026-01-01T00:00:00.000Z", kind: str = "indicator") -> Dict:
    oid = f"{kind}--{uuid.UUID(int=n, version=4)}"
    return {"type": kind, "spec_version": "2.1", "id": oid, "created": modified,
            "modified": modified, "pattern": "[domain-name:value = 'a.example']",
            "pattern_type": "stix", "valid_from": modified}  # fmt: skip


def modified(row: Dict) -> str:
    return json.loads(row["body"])["modified"]  # as the producer spelled it


def page_all(store: ObjectStore, coll: str = COLL, limit: int = 7, **kw: Any) -> List[Dict]:
    seen: List[Dict] = []
    token = None
    while True:
        page = store.query(coll, limit=limit, next_token=token, **kw)
        assert not (page.more and not page.next)
        seen += page.objects
        if not page.more:
            return seen
        token = page.next


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, tmp_path) -> str:
    """Where a store lives: a SQLite file, or a fresh schema on the test PostgreSQL server."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_database")
    return str(tmp_path / "taxii.db")


@pytest.fixture
def store(target):
    s = open_store(target)
    yield s
    s.close()


def _writer(target: str, base: int) -> None:
    s = open_store(target)
    for batch in range(30):
        s.add(COLL, [obj(base + batch * 5 + i) for i in range(5)])
    s.close()


def test_date_added_is_unique_and_increasing_across_processes(target):
    open_store(target).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(target, base)) for base in (0, 10_000)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    s = open_store(target)
    try:
        rows = page_all(s, limit=13, versions=["all"])
        stamps = [r["date_added"] for r in rows]
        assert len(rows) == 300 and len({r["id"] for r in rows}) == 300
        assert stamps == sorted(stamps) and len(set(stamps)) == 300
        # one transaction's objects get consecutive microseconds, never the same one
        more = s.add(COLL, [obj(50_000 + i) for i in range(3)])
        assert more == [True] * 3
        tail = s.query(COLL, limit=10, added_after=stamps[-1]).objects
        assert [r["date_added"] - stamps[-1] for r in tail][:1] >= [1]
        assert len({r["date_added"] for r in tail}) == 3
    finally:
        s.close()


def test_paging_while_objects_arrive_misses_and_repeats_nothing(store):
    store.add(COLL, [obj(i) for i in range(40)])
    seen: List[str] = []
    token, added = None, 0
    while True:
        page = store.query(COLL, limit=9, next_token=token)
        seen += [r["id"] for r in page.objects]
        if added < 5:  # new objects come after the cursor: the consumer gets them later
            store.add(COLL, [obj(1000 + added * 3 + i) for i in range(3)])
            added += 1
        if not page.more:
            break
        token = page.next
    assert len(seen) == len(set(seen)) == 40 + 15


def test_added_after_combines_with_next(store):
    store.add(COLL, [obj(i) for i in range(30)])
    rows = page_all(store)
    cut = rows[11]["date_added"]
    after = page_all(store, limit=4, added_after=cut)
    assert [r["id"] for r in after] == [r["id"] for r in rows[12:]]
    # a next token from before the cut with an added_after beyond it: the later wins
    token = encode_next(rows[2]["date_added"], rows[2]["id"])
    page = store.query(COLL, limit=100, next_token=token, added_after=cut)
    assert [r["id"] for r in page.objects] == [r["id"] for r in rows[12:]]
    assert store.query(COLL, limit=5, added_after=rows[-1]["date_added"]).objects == []


def test_versions_duplicates_and_filters(store):
    v1, v2, v3 = ("2026-01-01T00:00:00.000Z", "2026-02-01T00:00:00.000Z",
                  "2026-03-01T00:00:00.000Z")  # fmt: skip
    assert store.add(COLL, [obj(1, v2)]) == [True]
    assert store.add(COLL, [obj(1, v2), obj(1, v1), obj(1, v3)]) == [False, True, True]
    assert store.add(OTHER, [obj(1, v2)]) == [True]  # collections are separate
    oid = obj(1)["id"]

    def mods(**kw: Any) -> List[str]:
        rows = store.query(COLL, limit=50, ids=[oid], **kw).objects
        return sorted(modified(r) for r in rows)

    assert mods() == [v3]  # last by default
    assert mods(versions=["first"]) == [v1]
    assert mods(versions=["all"]) == [v1, v2, v3]
    assert mods(versions=["first", "last"]) == [v1, v3]
    assert mods(versions=[v2]) == [v2]
    store.add(COLL, [obj(2, kind="malware"), obj(3)])
    types = store.query(COLL, limit=50, types=["malware"]).objects
    assert [r["type"] for r in types] == ["malware"]
    assert store.query(COLL, limit=50, spec_versions=["2.0"]).objects == []
    assert store.delete(COLL, oid, ["first"]) == 1
    assert mods(versions=["all"]) == [v2, v3]
    assert store.delete(COLL, oid) == 2
    assert mods(versions=["all"]) == []
    assert len(store.query(OTHER, limit=50).objects) == 1


def test_status_and_state_round_trip(store):
    body = {"id": str(uuid.uuid4()), "status": "complete", "total_count": 1}
    store.save_status(COLL, body)
    assert store.status(body["id"]) == (COLL, body)
    assert store.status(str(uuid.uuid4())) is None
    store.set_state("cursor", "42")
    assert store.get_state("cursor") == "42" and store.get_state("none", "d") == "d"


@pytest.mark.parametrize("token", ["", "%%%", "eA", "A" * 600, encode_next(1, "x")[:-3] + "!!"])
def test_foreign_tokens_are_bad_tokens(token):
    with pytest.raises(BadToken):
        decode_next(token)


def test_queries_walk_the_keyset_index(tmp_path):
    store = Store(tmp_path / "taxii.db")
    store.add(COLL, [obj(i) for i in range(50)])
    token = store.query(COLL, limit=10).next
    sql: List[str] = []
    store.db.set_trace_callback(sql.append)
    try:
        store.query(COLL, limit=10)
        store.query(COLL, limit=10, next_token=token)
        store.query(COLL, limit=10, added_after=1, next_token=token, types=["indicator"])
        store.query(COLL, limit=10, versions=["all"])
    finally:
        store.db.set_trace_callback(None)
    selects = [s for s in sql if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 4
    for statement in selects:
        plan = " | ".join(r[-1] for r in store.db.execute("EXPLAIN QUERY PLAN " + statement))
        assert "USING INDEX objects_keyset" in plan or "USING INDEX objects_type" in plan, plan
        assert "TEMP B-TREE" not in plan, plan  # no sort of the whole collection
    store.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    batches=st.lists(
        st.lists(st.tuples(st.integers(0, 6), st.integers(1, 4)), min_size=1, max_size=6),
        min_size=1,
        max_size=6,
    ),
    limit=st.integers(1, 5),
)
def test_paging_returns_every_stored_version_once(store, batches, limit):
    coll = str(uuid.uuid4())  # one collection per example: one store serves them all
    expected = set()
    for batch in batches:
        objs = [obj(n, f"2026-01-0{day}T00:00:00.000Z") for n, day in batch]
        stored = store.add(coll, objs)
        for o, ok in zip(objs, stored):
            assert ok == ((o["id"], o["modified"]) not in expected)
            expected.add((o["id"], o["modified"]))
    rows = page_all(store, coll, limit=limit, versions=["all"])
    assert sorted((r["id"], modified(r)) for r in rows) == sorted(expected)
    stamps = [r["date_added"] for r in rows]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    latest = page_all(store, coll, limit=limit)
    assert len(latest) == len({oid for oid, _ in expected})


DAY = "2026-01-0{}T00:00:00.000Z"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    steps=st.lists(
        st.one_of(
            st.lists(st.tuples(st.integers(0, 4), st.integers(1, 9)), min_size=1, max_size=6),
            st.tuples(st.integers(0, 4), st.sampled_from(["first", "last", "all", 3, 5, 7])),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_first_and_last_versions_follow_every_add_and_delete(store, steps):
    """match[version] last and first name each object's newest and oldest stored version
    after any mix of adds (versions in any order, repeated) and deletes, paged or by id."""
    coll = str(uuid.uuid4())
    versions: Dict[str, set] = {}
    for step in steps:
        if isinstance(step, list):
            objs = [obj(n, DAY.format(day)) for n, day in step]
            store.add(coll, objs)
            for o in objs:
                versions.setdefault(o["id"], set()).add(o["modified"])
        else:
            n, which = step
            oid = obj(n)["id"]
            have = sorted(versions.get(oid, ()))
            wanted = [DAY.format(which)] if isinstance(which, int) else [which]
            gone = {"all": have, "first": have[:1], "last": have[-1:]}.get(wanted[0])
            gone = [v for v in have if v in wanted] if gone is None else gone
            assert store.delete(coll, oid, wanted) == len(gone)
            versions[oid] = set(have) - set(gone)
        live = {oid: sorted(v) for oid, v in versions.items() if v}
        for which, pick in (("last", -1), ("first", 0)):
            rows = page_all(store, coll, limit=3, versions=[which])
            assert {r["id"]: modified(r) for r in rows} == {o: v[pick] for o, v in live.items()}
            assert len(rows) == len(live)
        for oid, v in live.items():
            (row,) = store.query(coll, limit=5, ids=[oid]).objects
            assert modified(row) == v[-1]
            both = store.query(coll, limit=5, ids=[oid], versions=["first", "last"]).objects
            assert sorted(modified(r) for r in both) == sorted({v[0], v[-1]})


def test_objects_without_versions_are_their_own_latest(store):
    sco = {"type": "ipv4-addr", "spec_version": "2.1", "value": "192.0.2.1",
           "id": f"ipv4-addr--{uuid.UUID(int=9, version=4)}"}  # fmt: skip
    assert store.add(COLL, [sco, sco]) == [True, False]
    assert store.add(COLL, [sco]) == [False]
    assert [r["id"] for r in store.query(COLL, limit=5).objects] == [sco["id"]]
    assert store.delete(COLL, sco["id"], ["last"]) == 1
    assert store.query(COLL, limit=5).objects == []


def test_one_instant_is_one_version_whatever_its_spelling(store):
    assert store.add(COLL, [obj(1, "2026-01-01T00:00:00Z")]) == [True]
    assert store.add(COLL, [obj(1, "2026-01-01T00:00:00.000Z")]) == [False]  # the same version
    assert store.add(COLL, [obj(1, "2026-01-01T00:00:00.5Z")]) == [True]
    oid = obj(1)["id"]
    # As text "…00Z" sorts after "…00.5Z"; by time it is the earlier one.
    (last,) = store.query(COLL, limit=5, ids=[oid]).objects
    assert modified(last) == "2026-01-01T00:00:00.5Z"
    (first,) = store.query(COLL, limit=5, ids=[oid], versions=["first"]).objects
    assert modified(first) == "2026-01-01T00:00:00Z"  # the body keeps the producer's spelling
    assert (
        len(store.query(COLL, limit=5, ids=[oid], versions=["2026-01-01T00:00:00.000000Z"]).objects)
        == 1
    )


def test_older_stores_are_rewritten_to_one_spelling(tmp_path):
    path = tmp_path / "old.db"
    old = Store(path)
    old.add(COLL, [obj(1, "2026-01-01T00:00:00Z")])
    # What a store written before canonical versions holds: raw spellings, one instant twice.
    old.db.execute("UPDATE objects SET modified = '2026-01-01T00:00:00Z'")
    body = json.dumps(obj(1, "2026-01-01T00:00:00.000Z"))
    old.db.execute(
        "INSERT INTO objects VALUES (?, ?, 'indicator', '2.1', ?, 99999999999999999, ?)",
        (COLL, obj(1)["id"], "2026-01-01T00:00:00.000Z", body),
    )
    old.db.execute("DELETE FROM state")
    old.close()
    store = Store(path)
    rows = store.query(COLL, limit=5, versions=["all"]).objects
    assert [r["modified"] for r in rows] == ["2026-01-01T00:00:00.000000Z"]
    assert modified(rows[0]) == "2026-01-01T00:00:00Z"  # the first one added stays
    store.close()


def test_paging_by_several_types_keeps_order_and_misses_nothing(store):
    kinds = ["indicator", "malware", "note", "indicator", "relationship"] * 12
    store.add(COLL, [obj(n, kind=k) for n, k in enumerate(kinds)])
    wanted = {"malware", "relationship", "absent"}
    expected = [r["id"] for r in page_all(store, limit=100) if r["type"] in wanted]
    got, token = [], ""
    while True:
        page = store.query(COLL, limit=4, next_token=token or None, types=sorted(wanted))
        got += [r["id"] for r in page.objects]
        if not page.more:
            break
        token = page.next
    assert got == expected and len(got) == 24


def test_next_tokens_work_on_another_instance(target):
    """Two store instances on one target are two replicas' connections: a token issued by one
    pages on the other, while both write."""
    a, b = open_store(target), open_store(target)
    try:
        a.add(COLL, [obj(i) for i in range(20)])
        b.add(COLL, [obj(100 + i) for i in range(20)])
        seen, token, turn = [], None, 0
        while True:
            page = (a, b)[turn % 2].query(COLL, limit=6, next_token=token)
            seen += [r["id"] for r in page.objects]
            if turn < 3:
                (b, a)[turn % 2].add(COLL, [obj(1000 + turn)])  # arrives after the cursor
            turn += 1
            if not page.more:
                break
            token = page.next
        assert len(seen) == len(set(seen)) == 43
        # the publisher's cursor: only one of two instances moves it from the same value
        assert a.publish({COLL: [obj(5000)]}, "cursor", "", "1") == 1
        assert b.publish({COLL: [obj(5001)]}, "cursor", "", "1") is None
        assert b.get_state("cursor") == "1"
    finally:
        a.close()
        b.close()


def test_postgres_refuses_a_newer_schema(pg_database):
    open_store(pg_database).close()
    conn = database.connect(pg_database)
    conn.execute("UPDATE vtconnect_schema SET version = 99 WHERE component = 'taxii'")
    conn.close()
    with pytest.raises(database.SchemaTooNew, match="taxii is version 99"):
        open_store(pg_database)


def test_postgres_upgrade_flags_the_latest_versions_of_stored_objects(pg_database):
    """A database written by schema 1 (no latest flag) is upgraded in place: each object's
    newest version is found and served as before."""
    from taxii.store.postgres import SCHEMA

    conn = database.connect(pg_database)
    database.ensure(conn, database.Schema("taxii", SCHEMA.migrations[:1]))
    rows = [(COLL, obj(1)["id"], DAY.format(d), 10 + d) for d in (2, 1, 3)]
    rows += [(COLL, obj(2)["id"], DAY.format(5), 20), (OTHER, obj(1)["id"], DAY.format(1), 30)]
    for coll, oid, mod, stamp in rows:
        body = json.dumps(obj(int(oid[-12:], 16), mod))
        conn.execute("INSERT INTO taxii_objects VALUES (%s, %s, 'indicator', '2.1', %s, %s, %s)",
                     (coll, oid, mod.replace(".000Z", ".000000Z"), stamp, body))  # fmt: skip
    conn.close()
    store = open_store(pg_database)
    try:
        assert {r["id"]: modified(r) for r in store.query(COLL, limit=10).objects} == {
            obj(1)["id"]: DAY.format(3), obj(2)["id"]: DAY.format(5)}  # fmt: skip
        assert len(store.query(OTHER, limit=10).objects) == 1
        with store.pool.connection() as c:
            flags = c.execute("SELECT collection, modified, latest FROM taxii_objects "
                              "ORDER BY date_added").fetchall()  # fmt: skip
            assert [f[2] for f in flags] == [False, False, True, True, True], flags
            assert database.installed_versions(c)["taxii"] == SCHEMA.version == 2
        store.add(COLL, [obj(1, DAY.format(4))])
        assert modified(store.query(COLL, limit=10, ids=[obj(1)["id"]]).objects[0]) == DAY.format(4)
    finally:
        store.close()


def test_postgres_queries_walk_the_keyset_index(pg_database):
    store = open_store(pg_database)
    try:
        for chunk in range(4):  # past a few thousand rows the planner would scan and sort
            store.add(COLL, [obj(chunk * 5000 + i) for i in range(5000)])
        store.add(OTHER, [obj(i) for i in range(10)])
        token = store.query(COLL, limit=100).next
        conn = database.connect(pg_database)
        conn.execute("ANALYZE taxii_objects")
        conn.close()
        sql: List[str] = []
        real_rows = store._rows
        store._rows = lambda q, args: sql.append((q, args)) or real_rows(q, args)  # type: ignore
        store.query(COLL, limit=100)
        store.query(COLL, limit=100, next_token=token)
        store.query(COLL, limit=100, added_after=1, next_token=token, types=["indicator"])
        store.query(COLL, limit=100, versions=["all"])
        assert len(sql) == 4
        with store.pool.connection() as conn:  # the plans the store's own connections get
            for q, args in sql:
                plan = "\n".join(r[0] for r in conn.execute(
                    "EXPLAIN " + q.replace("?", "%s"), args).fetchall())  # fmt: skip
                assert "taxii_objects_keyset" in plan or "taxii_objects_types" in plan, plan
                assert "Sort" not in plan and "Seq Scan" not in plan, plan
                if "latest" in q:  # the newest versions: read from their own index, no MAX
                    assert "_latest on taxii_objects" in plan and "SubPlan" not in plan, plan
    finally:
        store.close()


def test_concurrent_writers_on_several_instances_never_share_a_stamp(target):
    """Writers on four instances at once (four replicas' connections): every stamp unique, and
    a reader paging meanwhile never finds a row appear behind its cursor."""
    import threading

    stores = [open_store(target) for _ in range(4)]
    start = threading.Barrier(len(stores) + 1)
    errors: List[BaseException] = []

    def write(s: ObjectStore, base: int) -> None:
        try:
            start.wait()
            for batch in range(40):
                s.add(COLL, [obj(base + batch * 3 + i) for i in range(3)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s, n * 10_000)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    start.wait()
    reader, seen, token = stores[0], [], None
    while any(t.is_alive() for t in threads):  # page along while they write
        page = reader.query(COLL, limit=50, next_token=token, versions=["all"])
        seen += page.objects
        if page.objects:
            token = encode_next(page.objects[-1]["date_added"], page.objects[-1]["id"])
    for t in threads:
        t.join(60)
    while True:  # the rest, after the last write
        page = reader.query(COLL, limit=50, next_token=token, versions=["all"])
        seen += page.objects
        if not page.objects:
            break
        token = encode_next(page.objects[-1]["date_added"], page.objects[-1]["id"])
    for s in stores:
        s.close()
    assert errors == []
    stamps = [r["date_added"] for r in seen]
    assert len(seen) == 4 * 40 * 3 == len({r["id"] for r in seen})  # none missed, none twice
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_summary_counts_objects_per_collection(store):
    assert store.summary() == {}
    store.add(COLL, [obj(i) for i in range(3)])
    store.add(OTHER, [obj(9)])
    newest = page_all(store, versions=["all"])[-1]["date_added"]
    summary = store.summary()
    assert summary[COLL] == (3, newest) and summary[OTHER][0] == 1


def test_nul_characters_in_lookups_match_nothing(store):
    """PostgreSQL text cannot hold NUL: a value carrying one (hostile URLs) matches nothing
    instead of failing the request."""
    store.add(COLL, [obj(1)])
    nul = "indicator--\x00"
    assert store.query(COLL, limit=5, ids=[nul]).objects == []
    assert store.query("\x00", limit=5).objects == []
    assert store.query(COLL, limit=5, types=["\x00"], spec_versions=["2.1\x00"]).objects == []
    token = encode_next(1, "indicator--\x00")
    assert len(store.query(COLL, limit=5, next_token=token).objects) in (0, 1)
    assert store.delete(COLL, nul) == 0 and store.status("\x00") is None
    assert store.get_state("\x00", "d") == "d" and not store.has_collection_objects("\x00")
    assert len(store.query(COLL, limit=5).objects) == 1


def test_window_pages_by_position_with_a_total(store):
    """TAXII 2.0 paging (`Range: items N-M`): rows by offset in (date_added, id) order, the
    total matching, filters and last-version applied, NUL values matching nothing."""
    store.add(COLL, [obj(n) for n in range(1, 21)] + [obj(90, kind="malware")])
    store.add(COLL, [obj(3, "2026-02-01T00:00:00.000Z")])  # a newer version of one
    store.add(OTHER, [obj(50)])
    everything = page_all(store)
    rows, total = store.window(COLL, offset=5, limit=4)
    assert total == 21 and [r["id"] for r in rows] == [r["id"] for r in everything[5:9]]
    rows, total = store.window(COLL, offset=19, limit=10)
    assert total == 21 and len(rows) == 2
    assert store.window(COLL, offset=21, limit=5) == ([], 21)
    rows, total = store.window(COLL, offset=0, limit=50, types=["malware"])
    assert total == 1 and rows[0]["type"] == "malware"
    after = everything[9]["date_added"]
    rows, total = store.window(COLL, offset=0, limit=50, added_after=after)
    assert total == 11 and rows == everything[10:]
    rows, total = store.window(COLL, offset=0, limit=50, ids=[obj(3)["id"]], versions=["all"])
    assert total == 2
    assert store.window(COLL, offset=0, limit=5, ids=["indicator--\x00"]) == ([], 0)
