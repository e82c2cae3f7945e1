"""The paper's numbers: internal consistency of panns_core.paper."""

from panns_core import paper


def test_every_table_xi_model_has_table_xii_and_a_family():
    assert set(paper.TABLE_XI) == set(paper.TABLE_XII) == set(paper.PAPER_NAMES) == set(paper.FAMILIES)
    assert len(paper.TABLE_XI) == 15


def test_cnn14_baseline_is_the_same_row_in_every_ablation_table():
    base = paper.TABLE_XI["Cnn14"]
    for rows in (paper.TABLE_V[-2:-1], paper.TABLE_VI[-1:], paper.TABLE_VII[-1:],
                 paper.TABLE_VIII[-1:], paper.TABLE_IX[-1:], paper.TABLE_X[1:2]):
        assert {k: rows[0][k] for k in ("mAP", "AUC", "d_prime")} == base


def test_artefact_ids_cover_tables_figures_and_transfer():
    ids = set(paper.ARTEFACT_IDS)
    assert len(ids) == len(paper.ARTEFACT_IDS) == 15 + 1 + 6 + 1 + 7
    for table, fig, _ in paper.TRANSFER_TASKS.values():
        assert table in ids and fig in ids
    assert set(paper.TABLES) | set(paper.FIGURES) == ids
    assert set(paper.TRANSFER) == set(paper.TRANSFER_TASKS)
