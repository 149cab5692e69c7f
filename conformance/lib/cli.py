"""CLI cases (placeholder, filled below)."""
CLI_CASES = []


def run_cli_cases(cases, commands, tmproot):
    return []
