"""Option value types of the command line: each parses one option's text and raises ``ArgumentTypeError`` with a
message that says what is expected, so that argparse reports it on one line."""

from __future__ import annotations

import argparse

from model_runner.common.typing import ImageDimensions


def _int_in_range(text: str, minimum: int, maximum: int | None = None, what: str = "a whole number") -> int:
    """Parse a whole number between ``minimum`` and ``maximum``.

    :param text: str = the option value
    :param minimum: int = the smallest value accepted
    :param maximum: Optional[int] = the largest value accepted, None for no bound
    :param what: str = what the value is, for the message
    :return: int = the number
    :raises argparse.ArgumentTypeError: when it is not one
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what} of at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise argparse.ArgumentTypeError(f"expected {what} up to {maximum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """Parse a whole number of at least 1.

    :param text: str = the option value
    :return: int = the number
    :raises argparse.ArgumentTypeError: when it is not one
    """
    return _int_in_range(text, 1)


def non_negative_int(text: str) -> int:
    """Parse a whole number of at least 0.

    :param text: str = the option value
    :return: int = the number
    :raises argparse.ArgumentTypeError: when it is not one
    """
    return _int_in_range(text, 0)


def port(text: str) -> int:
    """Parse a TCP port number.

    :param text: str = the option value
    :return: int = the port
    :raises argparse.ArgumentTypeError: when it is not in 1..65535
    """
    return _int_in_range(text, 1, 65535, "a port number")


def listen_port(text: str) -> int:
    """Parse a port to listen on, 0 for any free port.

    :param text: str = the option value
    :return: int = the port
    :raises argparse.ArgumentTypeError: when it is not in 0..65535
    """
    return _int_in_range(text, 0, 65535, "a port number")


def refresh_seconds(text: str) -> float:
    """Parse a refresh period in seconds, from 0.5 to 3600.

    :param text: str = the option value
    :return: float = the seconds
    :raises argparse.ArgumentTypeError: when it is not a number in that range
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0.5 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds between 0.5 and 3600, got {text}")
    return value


def rate(text: str) -> float:
    """Parse a probability.

    :param text: str = the option value
    :return: float = the probability
    :raises argparse.ArgumentTypeError: when it is not a number in [0, 1]
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text}")
    return value


def _dimensions(text: str, minimum: int) -> ImageDimensions:
    parts = text.lower().split("x")
    try:
        values = [int(part) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or WIDTHxHEIGHT in pixels, got {text!r}") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < minimum:
        raise argparse.ArgumentTypeError(f"expected N or WIDTHxHEIGHT with sizes of at least {minimum}, got {text!r}")
    return values[0], values[1]


def size(text: str) -> ImageDimensions:
    """Parse a size in pixels: ``N`` (square) or ``WIDTHxHEIGHT``.

    :param text: str = the option value
    :return: ImageDimensions = (width, height)
    :raises argparse.ArgumentTypeError: when it is not one, or a size is below 1
    """
    return _dimensions(text, 1)


def overlap(text: str) -> ImageDimensions:
    """Parse an overlap in pixels: ``N`` or ``WIDTHxHEIGHT``, 0 allowed.

    :param text: str = the option value
    :return: ImageDimensions = (width, height)
    :raises argparse.ArgumentTypeError: when it is not one
    """
    return _dimensions(text, 0)
