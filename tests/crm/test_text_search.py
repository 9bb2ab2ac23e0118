"""The search boxes' text index (migrations 0025 and 0026, crm.text_search): the same rows as a substring
scan, kept in step with every write, and read through the index when it can answer."""

from __future__ import annotations

import importlib

import pytest
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leakmap.crm import selectors, services, text_search
from leakmap.crm.models import Account, Deal, Lead
from leakmap.crm.text_search import containing, few_containing
from tests.factories import T0, LeadFactory, make_deal

# Letters in both cases, CJK, a space, the characters LIKE and FTS5 treat specially, and ß,
# which Python upper-cases to SS and PostgreSQL leaves as it is.
ALPHABET = "aAbB王伟明 %_\"'*ß"


def _scan(queryset, q, fields):
    condition = Q()
    for field in fields:
        condition |= Q(**{f"{field}__icontains": q})
    return queryset.filter(condition)


def ids(queryset) -> set[int]:
    return set(queryset.values_list("pk", flat=True))


def test_it_finds_the_same_leads_as_a_substring_scan(rep):
    texts = st.text(ALPHABET, min_size=0, max_size=8)
    # Values of one and two characters too: on SQLite only the END characters give them
    # trigrams (migration 0026).
    for name, company in zip(
        ["王伟明", "AbBa", 'a"b*', "100%_x", "王 伟", "", "baab王伟", "B", "伟a", "Straße"],
        ["Ab 王伟明 Ltd", "", "王伟", "%_", "aaa", "bBb", "伟明", "ß", "_", ""],
        strict=True,
    ):
        LeadFactory(owner=rep, name=name, company=company)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(q=texts.filter(lambda q: q.strip() == q and q))
    def same_rows(q):
        leads = Lead.objects.all()
        assert ids(containing(leads, q, ("name", "company"))) == ids(
            _scan(leads, q, ("name", "company"))
        )

    same_rows()


def test_it_reads_terms_from_the_index(rep):
    wang = LeadFactory(owner=rep, name="王伟明", company="Acme Trading")
    li = LeadFactory(owner=rep, name="李雷", company="ACME 上海")
    assert len(few_containing(Lead, "acme", ("name", "company"))) == 2
    assert len(few_containing(Lead, "王伟明", ("name",))) == 1
    assert few_containing(Lead, "王伟明", ("company",)) == []  # only the columns asked for
    assert few_containing(Lead, "zzq", ("name", "company")) == []
    # One or two characters, at the start, middle or end of a value, or the whole of it.
    assert few_containing(Lead, "王伟", ("name",)) == [wang.pk]
    assert few_containing(Lead, "雷", ("name",)) == [li.pk]
    assert few_containing(Lead, "李雷", ("name",)) == [li.pk]
    assert sorted(few_containing(Lead, "Ac", ("company",))) == [wang.pk, li.pk]
    assert few_containing(Lead, "上海", ("name",)) == []
    assert few_containing(Lead, "zq", ("name", "company")) == []
    assert few_containing(Lead, "明王", ("name",)) == []  # its characters, not side by side
    if connection.vendor == "sqlite":
        assert few_containing(Lead, "\x01", ("name",)) is None  # what ends the index's values
    with pytest.raises(ValueError, match="no text index"):
        few_containing(Lead, "acme", ("title",))


@pytest.mark.skipif("connection.vendor != 'sqlite'")
def test_a_short_term_that_starts_many_trigrams_is_common(rep, monkeypatch):
    for name in ("李雷", "李四", "李明"):
        LeadFactory(owner=rep, name=name)
    assert len(few_containing(Lead, "李", ("name",))) == 3
    monkeypatch.setattr(text_search, "TRIGRAMS_PER_TERM", 2)  # 李雷, 李四, 李明: three
    assert few_containing(Lead, "李", ("name",)) is None
    assert len(few_containing(Lead, "李四", ("name",))) == 1
    found = containing(Lead.objects.all(), "李", ("name",))
    assert ids(found) == ids(_scan(Lead.objects.all(), "李", ("name",)))


@pytest.mark.skipif("connection.vendor != 'sqlite'")
def test_a_short_term_is_found_on_sqlite_without_reading_every_row(rep):
    LeadFactory(owner=rep, name="王伟", company="")
    LeadFactory(owner=rep, name="Other", company="")
    with CaptureQueriesContext(connection) as queries:
        found = list(containing(Lead.objects.all(), "王伟", ("name", "company")))
    assert [lead.name for lead in found] == ["王伟"]
    assert not any("LIKE" in query["sql"] for query in queries), queries.captured_queries


@pytest.mark.skipif("connection.vendor != 'sqlite'")
def test_migration_0026_goes_back_to_0025s_index_and_forward_again(rep):
    """0026's SQL run both ways on a database with rows: each index it leaves finds them."""
    short_terms = importlib.import_module("leakmap.crm.migrations.0026_text_search_short_terms")
    before = LeadFactory(owner=rep, name="王伟", company="Acme")
    with connection.cursor() as cursor:
        for sql in short_terms._backward("crm_lead", ("name", "company")):
            cursor.execute(sql)
        during = LeadFactory(owner=rep, name="李雷", company="Acme")  # 0025's triggers
        cursor.execute("SELECT rowid FROM crm_lead_text WHERE crm_lead_text MATCH 'acme'")
        assert sorted(row[0] for row in cursor.fetchall()) == [before.pk, during.pk]
        for sql in short_terms._forward("crm_lead", ("name", "company")):
            cursor.execute(sql)
    after = LeadFactory(owner=rep, name="王五", company="")
    assert few_containing(Lead, "王伟", ("name",)) == [before.pk]
    assert few_containing(Lead, "李雷", ("name",)) == [during.pk]
    assert sorted(few_containing(Lead, "王", ("name",))) == [before.pk, after.pk]
    assert sorted(few_containing(Lead, "acme", ("company",))) == [before.pk, during.pk]


def test_a_common_term_is_searched_by_the_lists_own_order(rep, monkeypatch):
    for i in range(5):
        LeadFactory(owner=rep, name=f"Acme {i}")
    monkeypatch.setattr(text_search, "PROBE", 3)
    assert few_containing(Lead, "acme", ("name",)) is None  # more than PROBE: common
    found = containing(Lead.objects.order_by("name"), "acme", ("name",))
    assert [lead.name for lead in found] == [f"Acme {i}" for i in range(5)]
    assert "IN (" not in str(found.query)  # the scan, not a list of ids
    monkeypatch.setattr(text_search, "PROBE", 5)
    assert len(few_containing(Lead, "acme", ("name",))) == 5


def test_a_short_term_is_looked_for_in_the_lists_own_rows_first(rep, teammate, monkeypatch):
    for i in range(3):
        LeadFactory(owner=rep, name=f"Ac {i}")
    LeadFactory(owner=teammate, name="Ac theirs")
    mine = selectors.visible_leads(rep)
    found = containing(mine.order_by("name"), "ac", ("name",))
    assert "IN (" in str(found.query)  # the ids the look-up found, sorted
    assert [lead.name for lead in found] == ["Ac 0", "Ac 1", "Ac 2"]
    monkeypatch.setattr(text_search, "PROBE", 2)
    found = containing(mine.order_by("name"), "ac", ("name",))
    assert "IN (" not in str(found.query)  # common: the ordered walk
    assert [lead.name for lead in found] == ["Ac 0", "Ac 1", "Ac 2"]


def test_the_index_follows_renames_and_deletes(rep):
    lead = LeadFactory(owner=rep, name="Old Name Ltd", company="Alpha")
    other = LeadFactory(owner=rep, name="Keep Me", company="Beta")
    Lead.objects.filter(pk=lead.pk).update(name="New Name Ltd")
    assert few_containing(Lead, "old name", ("name",)) == []
    assert few_containing(Lead, "new name", ("name",)) == [lead.pk]
    two = LeadFactory(owner=rep, name="王伟", company="")
    Lead.objects.filter(pk=two.pk).update(name="李雷")
    assert containing(Lead.objects.all(), "王伟", ("name",)).count() == 0
    assert list(containing(Lead.objects.all(), "李雷", ("name",))) == [two]
    two.delete()
    assert containing(Lead.objects.all(), "李雷", ("name",)).count() == 0
    Lead.objects.filter(pk=lead.pk).update(status="contacted")  # not a searched column
    assert few_containing(Lead, "alpha", ("company",)) == [lead.pk]
    lead.delete()
    assert few_containing(Lead, "new name", ("name",)) == []
    assert few_containing(Lead, "keep", ("name",)) == [other.pk]


def test_a_deal_is_found_by_its_own_name_or_its_accounts(rep):
    by_name = make_deal(owner=rep, name="Acme renewal")
    holdings = services.account_create(name="ACME Holdings", owner=rep)
    by_account = make_deal(owner=rep, name="Order 7", account=holdings)
    make_deal(owner=rep, name="Unrelated", account=services.account_create(name="Other", owner=rep))
    found = containing(Deal.objects.all(), "acme", ("name", "account__name"))
    assert ids(found) == {by_name.pk, by_account.pk}


def test_a_rep_finds_only_their_own_leads_whatever_the_index_holds(client, rep, teammate):
    LeadFactory(owner=rep, name="Acme Mine")
    LeadFactory(owner=teammate, name="Acme Theirs")
    client.force_login(rep)
    html = client.get(reverse("lead_list"), {"q": "acme"}).content.decode()
    assert "Acme Mine" in html and "Acme Theirs" not in html
    assert [d.name for d in selectors.search(selectors.visible_leads(rep), "acme", ("name",))] == [
        "Acme Mine"
    ]


def test_every_lists_search_box_answers_through_it(client, admin_user, rep):
    lead = LeadFactory(owner=rep, name="Zeta Lead", company="Omega Co")
    deal = make_deal(owner=rep, name="Zeta Deal")
    client.force_login(admin_user)
    for url, needle in (
        (reverse("lead_list"), "Zeta Lead"),
        (reverse("deal_list"), "Zeta Deal"),
        (reverse("account_list"), None),
        (reverse("contact_list"), None),
    ):
        assert client.get(url, {"q": "zzq"}).status_code == 200
        if needle:
            assert needle in client.get(url, {"q": "zeta"}).content.decode()
    assert lead.pk and deal.pk


def _bitmap_plan(queryset) -> str:
    """PostgreSQL's plan for `queryset` with only a bitmap scan left, which only an index that
    can answer the condition offers: without it the plan falls back to the disabled
    sequential scan."""
    paths = ("seqscan", "indexscan", "indexonlyscan")
    with connection.cursor() as cursor:
        for path in paths:
            cursor.execute(f"SET LOCAL enable_{path} = off")
        sql, params = queryset.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        # SET LOCAL lasts to the test's rollback: the rest of the test plans normally.
        for path in paths:
            cursor.execute(f"RESET enable_{path}")
    return plan


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_postgresql_can_answer_icontains_from_the_trigram_indexes(rep):
    """The GIN indexes hold UPPER(column::text), the expression Django's icontains compares: with
    every other path off, the planner reads them (on a few rows it would rather scan)."""
    LeadFactory(owner=rep, name="Acme", company="Acme")
    make_deal(owner=rep, name="Acme")
    for model, column in ((Lead, "name"), (Lead, "company"), (Deal, "name"), (Account, "name")):
        # In no order, as the look-up asks: an ORDER BY lets the planner prefer a sorted index.
        plan = _bitmap_plan(_scan(model.objects.order_by(), "acme", (column,)).values("pk"))
        assert f"{model._meta.db_table}_{column}_trgm" in plan, plan
    # The look-up asks for matches in no order: Lead's default ordering would let the planner
    # walk the created_at index past every lead instead.
    with CaptureQueriesContext(connection) as queries:
        assert len(few_containing(Lead, "acme", ("name", "company"))) == 1
    assert "ORDER BY" not in queries[-1]["sql"]


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_postgresql_answers_a_short_term_from_the_character_indexes(rep):
    """Migration 0027's GIN indexes hold string_to_array(UPPER(column::text), NULL), the
    expression the short-term look-up compares: with every other path off, the planner reads
    them."""
    LeadFactory(owner=rep, name="王伟", company="Acme")
    make_deal(owner=rep, name="王伟")
    for model, column in ((Lead, "name"), (Lead, "company"), (Deal, "name"), (Account, "name")):
        condition = text_search._characters_and_contains("王伟", (column,))
        plan = _bitmap_plan(model._base_manager.filter(condition).values("pk"))
        assert f"{model._meta.db_table}_{column}_chars" in plan, plan


# --- Phones and e-mails (migration 0029) ----------------------------------------------------------


def test_part_of_a_phone_or_an_address_is_found_through_the_index(rep):
    from leakmap.crm.models import Contact

    zhang = LeadFactory(owner=rep, name="张三", phone="13800138000", email="Zhang@Acme.example.com")
    LeadFactory(owner=rep, name="李四", phone="13912345678", email="li@other.cn")
    contact = Contact.objects.create(
        name="王五", phone="021-8000-1234", email="wang@acme.cn", created_at=T0
    )
    for model, column, q, want in (
        (Lead, "phone", "138001", [zhang.pk]),
        (Lead, "phone", "8000", [zhang.pk]),
        (Lead, "email", "acme.example", [zhang.pk]),
        (Lead, "email", "ZHANG@", [zhang.pk]),
        (Contact, "phone", "8000-1", [contact.pk]),
        (Contact, "email", "acme.cn", [contact.pk]),
        (Lead, "phone", "555", []),
    ):
        assert few_containing(model, q, (column,)) == want, (model, column, q)
        assert ids(containing(model.objects.all(), q, (column,))) == ids(
            _scan(model.objects.all(), q, (column,))
        )
    # The index follows a changed number and a deleted lead.
    Lead.objects.filter(pk=zhang.pk).update(phone="13700000000")
    assert few_containing(Lead, "138001", ("phone",)) == []
    assert few_containing(Lead, "37000", ("phone",)) == [zhang.pk]
    Lead.objects.filter(pk=zhang.pk).delete()
    assert few_containing(Lead, "37000", ("phone",)) == []


def test_a_list_finds_part_of_a_phone_without_reading_every_phone(client, rep):
    LeadFactory(owner=rep, name="张三", phone="13800138000")
    with CaptureQueriesContext(connection) as queries:
        found = selectors.search(Lead.objects.all(), "138001", ("name", "company"))
        assert list(found.values_list("phone", flat=True)) == ["13800138000"]
    sql = " ".join(q["sql"] for q in queries)
    if connection.vendor == "sqlite":
        assert "crm_lead_text MATCH" in sql and "phone" in sql
    assert "LIKE '%138001%'" not in sql.replace('"', "")


@pytest.mark.skipif("connection.vendor != 'sqlite'")
def test_migration_0029_goes_back_and_forward_with_rows(rep):
    phone_email = importlib.import_module("leakmap.crm.migrations.0029_text_search_phone_email")
    before = LeadFactory(owner=rep, name="王伟", phone="13800138000")
    with connection.cursor() as cursor:
        for sql in phone_email._sqlite_backward("crm_lead"):
            cursor.execute(sql)
        during = LeadFactory(owner=rep, name="李雷", phone="13800139999")
        assert few_containing(Lead, "李雷", ("name",)) == [during.pk]
        for sql in phone_email._sqlite_forward("crm_lead", ("phone", "email")):
            cursor.execute(sql)
    assert sorted(few_containing(Lead, "13800", ("phone",))) == [before.pk, during.pk]


def test_a_name_search_does_not_read_the_phones_and_addresses(rep):
    """The names' index holds no e-mail: an address's part searched among names is as quick
    to refuse as any other text nobody's name holds."""
    LeadFactory(owner=rep, name="张三", email="zhang@example.com")
    assert few_containing(Lead, "example.com", ("name", "company")) == []
    assert few_containing(Lead, "example.com", ("email",)) != []
    with pytest.raises(ValueError, match="no text index"):
        few_containing(Lead, "example", ("name", "email"))


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_postgresql_answers_part_of_a_phone_or_address_from_trigram_indexes(rep):
    from leakmap.crm.models import Contact

    LeadFactory(owner=rep, name="张三", phone="13800138000", email="zhang@acme.cn")
    Contact.objects.create(name="王五", phone="13800138000", email="wang@acme.cn", created_at=T0)
    for model in (Lead, Contact):
        for column, q in (("phone", "138001"), ("email", "acme.cn")):
            plan = _bitmap_plan(_scan(model.objects.order_by(), q, (column,)).values("pk"))
            assert f"{model._meta.db_table}_{column}_trgm" in plan, plan
