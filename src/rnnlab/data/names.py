"""One-item-per-line data: the embedded default data set (US Census first names) and users' files.

The default data set comes from the small PyPI package `names` (version 0.3.0, MIT licence),
which ships the 1990 US Census first-name lists: about 5,000 distinct names, the same kind of
data as makemore's `names.txt`. It is an optional dependency (`pip install rnnlab[app]`), so it is
imported only when asked for.
"""

from __future__ import annotations

import os

from .text import DataError, read_text

_CENSUS_FILES = ("dist.female.first", "dist.male.first")


def load_census_names() -> list[str]:
    """The US Census first names shipped by the `names` package: lowercase, each name once.

    Order: the female list, then the male list, each by decreasing frequency as in the files
    (`NAME  freq cumfreq rank` per line); a name on both lists keeps its first (female) place.
    Shuffle before splitting into train/validation, or the split is by frequency and sex.

    Returns:
        About 5,000 names of lowercase ASCII letters, e.g. ['mary', 'patricia', ...].

    Raises:
        DataError: the `names` package is not installed, or its files are not as expected.

    Example:
        >>> names = load_census_names()            # doctest: +SKIP
        >>> names[:3], len(names)                  # doctest: +SKIP
        (['mary', 'patricia', 'linda'], 5163)
    """
    from importlib import resources

    try:
        package = resources.files("names")
    except ImportError:
        raise DataError(
            "no --data given and the 'names' package (the embedded default data set) is not installed: "
            "pip install names==0.3.0, or pass --data FILE"
        ) from None

    seen: dict[str, None] = {}
    for filename in _CENSUS_FILES:
        resource = package / filename
        try:
            text = resource.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(
                f"data: cannot read {filename} from the 'names' package ({e}); "
                "expected names==0.3.0: pip install names==0.3.0"
            ) from None
        for lineno, line in enumerate(text.splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            name = fields[0].lower()
            if not name.isalpha():
                raise DataError(
                    f"data: {filename} line {lineno} of the 'names' package: expected a name, "
                    f"got {fields[0]!r}; expected names==0.3.0"
                )
            seen.setdefault(name, None)
    if not seen:
        raise DataError("data: the 'names' package holds no names; expected names==0.3.0")
    return list(seen)


def read_lines(path: str | os.PathLike[str]) -> list[str]:
    """The items of a one-item-per-line UTF-8 file: each line stripped, empty lines dropped.

    Args:
        path: the file, e.g. a list of names or words.

    Returns:
        The non-empty stripped lines, in file order (duplicates kept: they weight the data).

    Raises:
        DataError: as `read_text`, or no non-empty line is left.

    Example:
        >>> read_lines("names.txt")[:3]            # doctest: +SKIP
        ['emma', 'olivia', 'ava']
    """
    lines = [line.strip() for line in read_text(path).split("\n")]
    lines = [line for line in lines if line]
    if not lines:
        raise DataError(f"data: no non-empty lines in {path}")
    return lines
