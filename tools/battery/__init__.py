"""A reproducible battery of bad inputs and faults, tried on every ParrotLM entry point as a new
user would (issue 16): `python -m tools.battery [--jobs 2] [--out outputs/battery]`.

- `harness`: a case, running it in a fresh copy of the fixtures, and the verdict;
- `faults`: the setups that make a bad condition (corrupt files, read-only dirs, a full disk);
- `cases`: the cases themselves, per entry point, and the good-path controls;
- `fixtures`: the prepared corpus and the tiny trained run every case copies;
- `report`: the Markdown table and JSON totals.
"""
