"""`make bench` and `make bench-gpu`: measured ratios (not installed with the package)."""


def markdown_table(rows: list[tuple[str, str]]) -> str:
    """The `| measurement | value |` markdown table both benches print and write."""
    return "| measurement | value |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)
