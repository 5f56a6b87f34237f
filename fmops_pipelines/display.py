"""How figures are printed to people: one rounding rule everywhere (summary table, gate lines, progress)."""


def num(x) -> str:
    """0 decimals from 100 (with thousands separators), 2 from 1, else 3; anything else as it is."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return str(x)
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.2f}" if abs(x) >= 1 else f"{x:.3f}"
