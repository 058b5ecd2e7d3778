"""placeholder until built"""


def add_parser(sub) -> None:
    pass
