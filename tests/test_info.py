"""Parameter counts of the paper presets, as `python -m avmoe info` prints them (built on the meta device)."""
import pytest

from avmoe.info import build_on_meta, format_table, parameter_table

# adapter totals from the reference's analytic table (section 3.4), in millions
REFERENCE = {"paper-ave": 90.6, "paper-avvp": 111.9, "paper-s4": 198.0, "paper-ms3": 107.9, "paper-avqa": 109.8}
ADAPTER_PARTS = ("token maps (N_o->N_s)", "channel maps (C_o->C_s)", "routers", "cross-modal experts",
                 "unimodal experts")


def _token_map_params(n_v: int, n_a: int) -> int:
    """One paired block and position: the visual mixture maps N_a -> N_v tokens, the audio one N_v -> N_a."""
    return (n_a * n_v + n_v) + (n_v * n_a + n_a)


@pytest.mark.parametrize("preset", sorted(REFERENCE))
def test_paper_adapters_match_the_reference(preset):
    table = parameter_table(build_on_meta(preset))
    adapters = sum(table[p][0] for p in ADAPTER_PARTS)
    assert adapters / 1e6 == pytest.approx(REFERENCE[preset], rel=0.005)
    assert table["visual backbone"] == (0, 195_202_932)  # Swin-V2-L, frozen
    assert table["audio backbone"][0] == 0


def test_paper_ave_token_maps_exactly():
    # skip 2 leaves stages 1 and 3: 2 blocks x 2 positions at 2304/4096 tokens, 6 x 2 at 144/256
    expected = 4 * _token_map_params(2304, 4096) + 12 * _token_map_params(144, 256)
    table = parameter_table(build_on_meta("paper-ave"))
    assert table["token maps (N_o->N_s)"] == (expected, expected) == (76_412_608, 76_412_608)
    assert "90,549,536" in format_table("paper-ave", table)
