"""Texts for the WordPiece and encoder tests: a multilingual list of edge cases
(accents, CJK, emoji, punctuation, control characters, long words, special-token
text) and generated English prose of every length up to past 256 tokens."""

import random

EDGE_CASES = [
    "Hello, world!", "The quick brown fox jumps over the lazy dog.", "",
    "   leading and trailing spaces   ", "tabs\tand\nnewlines\r\nmixed", "UPPER lower MiXeD",
    "Café naïve résumé façade coöperate São Paulo Zürich", "Ångström Œuvre Æsir Ørsted ĳssel",
    "İstanbul ΟΔΟΣ Σίσυφος ß ẞ ǅ ﬁ ﬀ", "Привет, мир! Съешь же ещё этих мягких французских булок.",
    "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Xin chào thế giới",
    "你好，世界！我爱北京天安门。", "日本語のテキスト、カタカナとひらがな。", "한국어 텍스트입니다.",
    "mixed中文and English混合", "𠀀𠀁 𪜀 𫠠𫠠 𫤠𫤠 豈 更", "emoji 😀🎉👍🏽 👨‍👩‍👧 🫠 🥰 ❤️",
    "$5+3=8 ^_^ `x` |y| ~z~ @user #tag 100% a&b <html>", "¿Qué? ¡Sí! «quotes» “smart” ‘single’ — – … · •",
    "don't won't it's y'all rock'n'roll", "e-mail co-operate state-of-the-art", "3.14159 1,000,000 2024-05-17 12:30",
    "supercalifragilisticexpialidocious antidisestablishmentarianism", "a" * 100, "a" * 101, "ab" * 60 + " ok",
    "pneumonoultramicroscopicsilicovolcanoconiosis", "unaffable unbelievable tokenization wordpiece",
    "control\x00chars\x01here\x7f and\u200bzero\u200dwidth\ufeffbom", "soft\u00adhyphen a\u0085b a\u2028b a\u3000b",
    "combining e\u0301 a\u0300 n\u0303 o\u0308 \u0345", "precomposed é à ñ ö", "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    "Ⅻ ① ² ½ ™ © ® °C", "\ufffdreplacement\ufffd", "[CLS] [SEP] [MASK] [PAD] [UNK] [mask] x[MASK]y",
    "private \ue000 use \U000F0000 tag \U000E0041 end", "a\u0378b unassigned", "math ∑∫√∞≈≠≤≥ ∀x∃y",
    "arrows ←→↑↓ ⇒ ⇔", "Ελληνικά κείμενα με τόνους", "Tiếng Việt có dấu: Hà Nội, Đà Nẵng",
    "Ça va? Où est la bibliothèque?", "Größe Straße Äpfel Öl Übung", "ÀÁÂÃÄÅ àáâãäå ÇçÑñ",
    "one\u00a0two\u2009three\u202ffour", "https://example.com/path?q=1&r=2#frag", "user@example.com",
    "C++ and C# and F# .NET node.js", "snake_case camelCase PascalCase kebab-case", "ALL CAPS SENTENCE HERE",
    "\u1100\u1161\u11a8 jamo", "ŉ ǈ ǉ Ǌ", "Ｈｅｌｌｏ", "x" + "\u0301" * 5, "ﬃ ﬄ ﬅ", "a\u0301\u0316 a\u0316\u0301",
    "?", "a", " ", "\n\n", "I", "ok.",
]

_WORDS = (
    "the a of and to in is was for on that with as by at from it this be are were which an or his her "
    "their its has have had not but all one two three first new more most some time year people way day "
    "man woman child world life hand part place case week company system program question work government "
    "number night point home water room mother area money story fact month lot right study book eye job "
    "word business issue side kind head house service friend father power hour game line end member law "
    "car city community name president team minute idea kid body information back parent face others level "
    "office door health person art war history party result change morning reason research girl guy moment "
    "air teacher force education quickly slowly carefully happily beautiful large small old young important "
    "different local social national possible political public real best better economic able whole free "
    "military true federal international full special easy clear recent certain personal open red difficult "
    "available likely short single medical current wrong private past foreign fine common poor natural "
    "significant similar hot dead central happy serious ready simple left physical general environmental "
    "financial blue democratic dark various entire close legal religious cold final main green nice huge "
    "running jumped believes understood writing spoke taught caught thinking bought brought built chosen "
    "café résumé naïve jalapeño Zürich Kraków São Paulo Montréal Ångström"
).split()


def prose(n: int, seed: int = 12) -> list:
    """n sentences of 1 to ~300 words (the longest pass 256 tokens), varied punctuation."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 25 == 24:
            length = rng.randint(220, 320)  # truncated at 256 tokens
        elif i % 5 == 0:
            length = rng.randint(1, 4)      # very short
        else:
            length = rng.randint(5, 40)
        words = [rng.choice(_WORDS) for _ in range(length)]
        for k in range(len(words)):
            r = rng.random()
            if r < 0.06:
                words[k] += ","
            elif r < 0.08:
                words[k] = words[k].capitalize()
            elif r < 0.09:
                words[k] = f"({words[k]})"
        words[0] = words[0].capitalize()
        out.append(" ".join(words) + rng.choice([".", "!", "?", "", "..."]))
    return out


def random_strings(n: int, seed: int = 1) -> list:
    """Short strings drawn from a mixed alphabet (letters, accents, CJK, emoji, punctuation, whitespace)."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEF éèñüöçß 中文日本 !?.,;:'\"-()[]{} 0123456789 😀 \t\n"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80))) for _ in range(n)]
