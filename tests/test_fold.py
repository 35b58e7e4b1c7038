"""Character folding: each class of disguise, one table row per example."""

from __future__ import annotations

import pytest

from intercept.fold import fold, fold_char


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # case, with full Unicode case folding
        ("CAT", "cat"),
        ("Straße", "strasse"),
        ("STRASSE", "strasse"),
        ("ΛΌΓΟΣ", fold("λόγοσ")),  # final sigma folds like sigma
        ("λόγος", fold("λόγοσ")),
        ("ıi", "ii"),  # Turkish dotless i
        ("İstanbul", "istanbul"),
        # compatibility forms
        ("ｃａｔ", "cat"),  # fullwidth
        ("𝐜𝐚𝐭", "cat"),  # mathematical bold
        ("𝓬𝓪𝓽", "cat"),  # mathematical bold script
        ("𝕔𝕒𝕥", "cat"),  # double-struck
        ("ⓒⓐⓣ", "cat"),  # circled
        ("🅒🅐🅣", "cat"),  # negative circled
        ("🄲🄰🅃", "cat"),  # squared
        ("⒞⒜⒯", "(c)(a)(t)"),  # parenthesized: the parentheses stay, later stages drop them
        ("ﬁsh", "fish"),  # ligature
        ("æther", "aether"),
        # diacritics, precomposed and combining
        ("café", "cafe"),
        ("cafe\u0301", "cafe"),
        ("ñandú", "nandu"),
        ("Łódź", "lodz"),
        # lookalikes from other scripts
        ("сат", "cat"),  # Cyrillic es, a, te
        ("cаt", "cat"),  # Cyrillic a inside Latin
        ("κατ", "kat"),  # Greek kappa, alpha, tau
        ("χ", "x"),
        ("η", "n"),
        ("ϲat", "cat"),
        # invisible characters vanish
        ("c\u200bat", "cat"),  # zero-width space
        ("c\u200cat", "cat"),  # zero-width non-joiner
        ("c\u200dat", "cat"),  # zero-width joiner
        ("c\u2060at", "cat"),  # word joiner
        ("\ufeffcat", "cat"),  # BOM
        ("ca\u00adt", "cat"),  # soft hyphen
        ("c\u202eat\u202c", "cat"),  # bidi override
        ("c\ufe0fat", "cat"),  # variation selector
        ("c\U000e0100at", "cat"),  # variation selector supplement
        # separators and controls become spaces
        ("a\u00a0b", "a b"),
        ("a\u3000b", "a b"),
        ("a\x00b", "a b"),
        ("a\tb", "a b"),
        ("\ud800x", " x"),  # lone surrogate
        # digits of other scripts
        ("٣", "3"),
        ("３", "3"),
    ],
)
def test_fold(text: str, expected: str) -> None:
    assert fold(text) == expected


def test_fold_keeps_other_scripts_in_their_own_script() -> None:
    assert fold("שלום") == "שלום"
    assert fold("日本語") == "日本語"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("काला", "काला"),  # Devanagari vowel signs are part of the word
        ("ปู่", "ปู่"),  # Thai vowel and tone marks too
        ("が", "が"),  # Japanese voicing mark stays, composed
        ("か\u3099", "が"),  # and is composed when typed apart
        ("ｶﾞ", "ガ"),  # halfwidth katakana with its voicing mark
        ("שָׁלוֹם", "שלום"),  # Hebrew points are diacritics
        ("كَتَبَ", "كتب"),  # Arabic vowel marks too
    ],
)
def test_marks_that_belong_to_their_letter_stay(text: str, expected: str) -> None:
    assert fold(text) == expected


@pytest.mark.parametrize("char", ["A", "ß", "Ω", "ｃ", "\u200b", "\x00", "\ud800", "\U0010ffff"])
def test_fold_char_output_is_lowercase(char: str) -> None:
    assert fold_char(char) == fold_char(char).lower()
