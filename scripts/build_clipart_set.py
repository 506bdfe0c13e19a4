"""Build the labelled clip-art development set from Debian's ``openclipart-png``.

    python scripts/build_clipart_set.py [--root /usr/share/openclipart/png] [--out PATH]

Each picture's file name is split into words (``_ - .``, digits, camelCase) and the words are
matched, longest phrase first, against the emoji names of the ``emoji`` package (CLDR names,
GitHub aliases, Italian/French/Spanish names) and a short reviewed table of synonyms and
folder senses. Words after an author's name or a preposition ("owl on branch") only qualify
the picture and are not matched. A picture is kept when its words name exactly one
emoji-able thing; it lists the emojis a person would accept for it, most fitting first.
Non-depiction folders are skipped, byte-identical copies are kept once, and at most
``MAX_PER_EMOJI`` pictures share a first emoji (``MAX_FLAGS`` for all flags together), chosen
with a seeded RNG. Writes ``benchmarks/sets/openclipart.json``: a list of
``{file, accept, category, words}`` sorted by file; the output depends only on the installed
package and ``emoji==2.16.0``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import struct
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import emoji


def _words(text: str, sep: str | None = None) -> list[str]:
    """Split a table written as one string."""
    return text.split(sep)


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


ROOT = Path("/usr/share/openclipart/png")
OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "sets" / "openclipart.json"
LANGUAGES = ("it", "fr", "es")
MAX_PER_EMOJI = 12
MAX_FLAGS = 36
MIN_SIDE = 48  # smaller pictures are dots, not depictions
MAX_PIXELS = 16_000_000  # a few posters of 100+ megapixels are too big to decode
SEED = 20240611

# Folders with no depictions: UI icons, patterns, diagrams, card faces, pictogram sets whose
# names say what a sign means. Copies of their files filed elsewhere are skipped too.
SKIP_DIRS = _words(
    "buttons computer/buttons computer/diagrams computer/folders computer/icons logos "
    "recreation/games/cards shapes/arrows shapes/callouts shapes/flowchart shapes/jigsaw "
    "signs_and_symbols/flags/semaphore signs_and_symbols/led "
    "special transportation/roadsigns unsorted/duplicates"
)

# Matching stops at these words: authors' names (whatever follows is the rest of the name)
# and prepositions (whatever follows qualifies the thing named before: "dog on leash").
STOP_AT = _wordset(
    """
architetto architett architet archite archit archi arch francesco rollandin frolland jean toh
nicolas benji susan linda matthew william nicu gerald jarno juliane yves hash dave marcin ganson
peterm mimooh zazou of with on in under from for at into di da del della dei con per sulla sul
nella nel al alla sur du des de au aux avec
"""
)
# Words that never name the picture on their own (they may still be part of a phrase).
STOPWORDS = _wordset(
    """
new up top back end free cool soon accept zero one two three four five six seven eight nine ten
symbols flags sound mute metal hole hand hands sleeping angry thinking punch rook person adult
lit chat page cle etiquette sale leon lima pastel principe marchio metro cage clip tasto yeux
sci abc finestra ruota cubo coat labels running dash date bed speaker link wing ring rings ball
mag mouse orange bat seal turkey cone key palm fly bug glass black white box mobile
"""
)
# "x and y" names several things; FILLER may surround a flag's place name.
CONJUNCTIONS = _wordset("and e et y")
FILLER = _wordset("the flag national uk")

# Reviewed synonyms and phrases, "words | words: emojis; ...". "!" drops the picture.
SYNONYMS_TEXT = """
ladybug | coccinellona: 🐞; hen | pollo | gallina: 🐔 🐓; acquila: 🦅; cigni: 🦢; flamand: 🦩
gull | seagull | gabbiano | uccelli | pennuto: 🐦; caterpillar: 🐛
cavalletta | grasshopper | grass hopper: 🦗; formichina | formicona: 🐜; moschito: 🦟
ragnetto: 🕷️; farfalle: 🦋; dino | dinosaur | dinosauro | dinosauri: 🦕 🦖
angelfish | gourami | giraffe cichlid | clown loach | pescetto: 🐠 🐟; bluewhale: 🐋 🐳
bunny: 🐇 🐰; squirrel: 🐿️; baboon: 🐒 🐵; bull | toro: 🐂; cheetah: 🐆; fawn: 🦌; kitten: 🐈 🐱
cani | cane: 🐕 🐶; wedding rings: 💍; puppy: 🐕 🐶; porcinet: 🐖 🐷; vacca: 🐄 🐮
stambecco: 🐐; pecorella: 🐑; papera: 🦆; colombo: 🕊️ 🐦; elefantone: 🐘
lucertolona | lucertolone | ramarro: 🦎; tux: 🐧; feet: 🦶; gelato: 🍨 🍦
glace italienne | cone soft | ice cream cone: 🍦; muffin: 🧁; pasta: 🍝; soup: 🍲 🥣; honey: 🍯
milk: 🥛; mug | tazza | teacup | cuppa: ☕ 🍵; wine: 🍷; martini glass: 🍸; beer: 🍺 🍻
juice box | apple juice box | orange juice box: 🧃
pie | pie apple | pie cherry | pie pumpkin: 🥧; lime: 🍋‍🟩 🍋; grape: 🍇; cherry: 🍒
pomodori | pomodoro: 🍅; toadstool: 🍄; steak: 🥩; burger | chicken burger: 🍔
frying pan | padella: 🍳; bread: 🍞 🥖; cake: 🍰 🎂; torta | gateau: 🍰 🎂; candy: 🍬 🍭
gauffre: 🧇; pepper | cayenne pepper | habanero pepper | cayennepepperrevisited: 🌶️; salad: 🥗
tramezzino: 🥪; perogies: 🥟; ice cube | icecube: 🧊; pizza cheese: 🍕
lightbulb | cfbulb | bulb: 💡; floppy: 💾; cd: 💿 📀; computer | desktop | workstation: 🖥️ 💻
monitor | lcd | crt monitor | flat screen | tft screen | schermo: 🖥️; computer keyboard: ⌨️
joystick: 🕹️ 🎮; joypad | xbox controller: 🎮; laserprinter: 🖨️
camera | digital camera | macchina fotografica: 📷 📸; camcorder | telecamera: 📹 🎥
phone | telephone | ip phone: ☎️ 📞
mobile phone | cell phone | cellular phone | handphone: 📱 📲; telephone receiver: 📞 ☎️
envelope | envelop | lettera: ✉️; pen: 🖊️ 🖋️; paintbrush | paint brush | brush: 🖌️; palette: 🎨
paperclip | clips: 📎 🖇️; thumbtack | puntine | pushpin: 📌 📍; diary: 📔
bible | closed bible: 📕 📖; stack of books: 📚; parchment: 📜; folder | cartella: 📁 📂
magnifying glass | magnifing glass | magnificator: 🔍 🔎
sand glass | sandglass | clessidra: ⌛ ⏳; clock | orologio: ⏰ 🕰️; keyring | chiave: 🔑
lock | padlock | lucchetto: 🔒 🔐; lock open: 🔓; saw | sega: 🪚
gear | cog | engrenagem | ruota dentata: ⚙️; sword | longsword | katana: 🗡️ ⚔️; chain: ⛓️; penny: 🪙
diamond | saphire: 💎; aids ribbon: 🎗️; tie: 👔; mitten: 🧤; boot | hiking boot: 🥾
tennis shoe | tennis shoes: 👟; shoe: 👞 👟; calzettoni: 🧦; vestito: 👗; borsetta: 👜
valigie | suitcase: 🧳; cardboard box | scatolone: 📦; pacco regalo: 🎁; baloon | palloncini: 🎈
fireworks: 🎆 🎇; fatherchristmas: 🎅; heart arrow | arrow heart: 💘; sunshine: ☀️; rainbow: 🌈
mail: ✉️ 📧; card figures club: ♣️; card figures diamond: ♦️; card figures heart: ♥️ ❤️
card figures spade: ♠️; sun: ☀️ 🌞; sunset | tramonto: 🌅 🌇; sun flower: 🌻; dice: 🎲
chess | chesspieces: ♟️; cello: 🎻; drum | africandrum | djambf | derbouk | war drum: 🥁 🪘
trombone: 🪊; piano keys: 🎹
musical note | quaver | croche | double croche | double note: 🎵 🎶
treble clef | bass clef | treble staff: 🎼; soccer | soccer ball | soccer ballon: ⚽
baseball cap: 🧢; tennis racket: 🎾; table tennis: 🏓; golf drive: 🏌️ ⛳; blowling: 🎳
dartboard | target with arrow: 🎯; cricket bat: 🏏; yoga | yoga person: 🧘; corridore: 🏃
ballerina: 💃 🩰; bride: 👰; groom: 🤵; man | uomo | signore: 👨 🧑
woman | donna | signorina: 👩 🧑; boy | ragazzo: 👦 🧒; girl | bambina: 👧 🧒; ragazza: 👧 👩
grandpa | nonno: 👴; princess | principessa: 👸; pregnancy: 🤰; police man: 👮
woman police: 👮‍♀️ 👮; fireman: 🧑‍🚒 👨‍🚒; woman doctor | woman nurse: 👩‍⚕️ 🧑‍⚕️
woman chemist: 👩‍🔬 🧑‍🔬; clown: 🤡; skull: 💀 ☠️; crossbones | skull and bones: ☠️
mouth | lips: 👄 💋; tooth: 🦷; foot print: 👣 🦶; hand print: 🖐️ ✋; thumb up: 👍
earth | planet earth | globe | earth globe: 🌍 🌎 🌏 🌐; wire globe: 🌐 🌍
house | home | casa: 🏠 🏡; moon: 🌙 🌕; moon crescent: 🌙 🌒 🌘; moon full | full moon: 🌕 🌝
moon half: 🌓 🌗; nomoon: 🌑; waxingcrescent: 🌒; firstquarter: 🌓; waxinggibbous: 🌔
fullmoon: 🌕 🌝; waninggibbous: 🌖; lastquarter: 🌗; waningcrescent: 🌘; clouds: ☁️
cloudy: ⛅ 🌥️ 🌤️; lightning: 🌩️ ⚡; rain: 🌧️ ☔; snow | snowstorm: 🌨️ ❄️; storm: ⛈️ 🌩️; drop: 💧
bar: 🍸; drinking fountain: 🚰; immigration: 🛂; heliport: 🚁; litter disposal: 🚮; nursery: 🚼
rail transportation: 🚆; air transportation: ✈️; water transportation: ⛴️ 🚢
departing flights: 🛫; restaurant: 🍴 🍽️; toilet men: 🚹; toilet women: 🚺; toilets: 🚻 🚾
hummer | blazer | land cruiser: 🚙; car: 🚗 🚘; truck: 🚚 🚛; boat: ⛵ 🚤 🛥️
airplane | aircraft: ✈️ 🛩️; departing plane: 🛫 ✈️; ambulans: 🚑; pirate: 🏴‍☠️
coffe | coffe tea: ☕ 🍵; satellite dish: 📡; scissors rpswb: ✌️ ✂️; rock rpswb: ✊ 👊
paper rpswb: 🖐️ ✋; thought cloud: 💭; information: ❓ ℹ️; barber: 💇 ✂️ 💈; sailing sunset: ⛵ 🌅
flan: 🥧 🍮; cocktail: 🍸 🍹; ticket: 🎫 🎟️; road runner: 🚗 🚘; little boy | fat man: 💣
dancers: 💃 🕺; kiddy train: 🚂 🚆; formula one car: 🏎️ 🚗
candied apples | potato chips | garlic toast | egg muffin | corn dog | onion rings: !
farmer onelette | ice water | spaghetti monster | flying spaghetti | baseball bat: !
baseball glove | handball ball | football pitch | water skier | coat check | coat of arms: !
no dogs | no parking | forward | first aid | keyboard key | mouse pointer | pt step: !
recycling box | package handling | blocco notes | flower bed | signalflag | bus lane: !
bus opposite | mountain dulcimer | grain elevator | pill button | banana republic | rating: !
zero stars | euro symbol | satellite hub | satellite zazou | glace | tsunami | mountain seal: !
bwh | slate | wine corks | harmon mute | straight mute | school hallway | toros: !
scrathing post | scodella | lindworm | insetto | shoe print | elfish | wedding sign: !
cd player | fuoco | brush roller | scrub brush | keyboardlayout | wagon | blueprint | rpg: !
arriving flights | mad little | unit blocks | stylized yoga | solomons knot: !
"""

# Words whose meaning depends on the folder: word -> {folder prefix: emojis}.
FOLDER_SENSES: dict[str, dict[str, str]] = {
    "mouse": {"computer": "🖱️", "signs_and_symbols": "🖱️", "animals": "🐁 🐭"},
    "orange": {"food": "🍊"},
    "bat": {"animals": "🦇"},
    "seal": {"animals": "🦭"},
    "turkey": {"animals": "🦃", "signs_and_symbols/flags": "🇹🇷"},
    "cone": {"food/desserts": "🍦 🍨", "recreation/party": "🍦 🍨"},
    "key": {"tools": "🔑 🗝️"},
    "palm": {"plants": "🌴", "signs_and_symbols": "🌴"},
    "fly": {"animals/bugs": "🪰"},
    "mag": {"tools": "🔍 🔎"},
    "ball": {"recreation/sports": "🎱"},
    "mobile": {"office": "📱 📲"},
    "box": {"containers": "📦", "office": "📦"},
}

# Folders where every picture shows the same thing: used when no word matched.
FOLDER_DEFAULTS = {
    "animals/birds/penguin": "🐧",
    "animals/dinosaurs": "🦕 🦖",
    "animals/mammals/bears": "🐻",
    "animals/mammals/dogs": "🐕 🐶",
    "animals/mammals/housecats": "🐈 🐱",
    "buildings/homes": "🏠 🏡",
    "transportation/vehicles/hummers": "🚙",
}

# Pictures whose names carry no words, labelled by eye; "" drops the picture.
_CLOCKS = "🕐🕑🕒🕓🕔🕕🕖🕗🕘🕙🕚🕛"
_SMILIES = _words(
    "🙂 😊 ☺️|☹️ 🙁 😞|😐 😑|😛|😛|😢 😥|😁 😀 😃|😈|😮 😯 😲|😎|"
    "🙂 😊 ☺️|😀 😊 🙂|☹️ 🙁 😞|😐 😑|😛|😛|😢 😥|😁 😀 😃|😮 😯 😲|😈|😎||😇|🥰|"
    "😕 🤔|😴|🤥|😉 😏||🤫|🤓",
    "|",
)
FILE_LABELS = {
    **{f"signs_and_symbols/clocks/clock{i:02d}.png": f"{c} 🕰️" for i, c in enumerate(_CLOCKS, 1)},
    **{
        f"people/smilies/smiley{n:03d}.png": label
        for n, label in zip([*range(1, 11), *range(100, 121)], _SMILIES, strict=True)
    },
    "people/smilies/smiley_nicolas_01.png": "😊 😄",
    "people/smilies/smileytwinkle_nicolas_ga_01.png": "😉",
    "people/smilies/base.png": "🙂 😊",
    "people/smilies/smiley_nicolas_gagliani_01.png": "😆 😄",
    "people/clothing/sunglasses_linda_kim_01.png": "👓 🕶️",
    "signs_and_symbols/pen1.png": "✏️ 🖊️",
    "signs_and_symbols/awards/ribbon.png": "🏵️ 🎖️",
    "animals/birds/pollo_architetto_frances_01.png": "🦃",
}
# Pictures that are blank on white, placeholders ("Linked Image Not Found"), specks, or not
# what their name says; found by eye and by a one-off count of non-white pixels.
DROP_NAMES = _wordset(
    """
cloudy03.png bucket_michael_moore_.png clouds_jon_phillips_01.png clouds_jon_phillips_04.png
clouds_jon_phillips_05.png clouds_jon_phillips_06.png clouds_jon_phillips_10.png
moon_jasper_van_de_grond_01.png pear_jean-victor_balin_01r.png generic_ticket_ryan_phil_01.png
corridore.png houses_jon_phillips_01.png house_fudriot_omic.ch_01.png toros_01.png
badminton_racket_brice_b_01.png caterpillar.png tux_didier_fabert_01.png dolphin_01.png
duck_yellow_ii_kurt_cagl_.png tie_-_clothing_nicu_bucu_01.png my_lovely_baby_enrique_m_01.png
my_lovely_baby_enrique_m_02.png angel_01.png teschio_fabio_olivo_01.png galette_01.png
teschio_fabio_olivo_02.png light_bulb_karl_bartel_01.png fire_stefan_bazelkov_01.png
"""
)

# Related emojis accepted after the first one of a group that is matched.
GROUPS = _words("🍎 🍏|🐇 🐰|🫍 🐋|📖 📕 📗 📘 📙 📚|☘️ 🍀|❤️ ♥️|📫 📪 📬 📭|🐪 🐫|🦅 🐦|🦉 🐦", "|")
GROUPS += _words("🐓 🐔|🐁 🐭 🐀", "|")

_FQ = emoji.STATUS["fully_qualified"]
_MODIFIERS = re.compile("[\U0001f3fb-\U0001f3ff]")
VETO = ("!",)


@dataclass(frozen=True)
class Match:
    """A run of words and the emojis it names, most fitting first."""

    words: tuple[str, ...]
    emojis: tuple[str, ...]


def tokenise(text: str) -> list[str]:
    """Split on ``_ - .``, digits and camelCase; strip accents; lowercase."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    return [w for w in re.split(r"[^a-z]+", text.lower()) if w]


def _name_words(name: str) -> tuple[str, ...] | None:
    """Words of an emoji name like ``:dog_face:``; None for names with digits."""
    if re.search(r"\d", name):
        return None
    words = tokenise(name.replace("’", "").replace("'", "").replace("&", " and "))
    return tuple(words) or None


def _parse(emojis: str) -> tuple[str, ...]:
    return tuple(emojis.split())


def synonyms() -> dict[tuple[str, ...], tuple[str, ...]]:
    """The reviewed synonym table as word tuples -> emojis (VETO for "!")."""
    table: dict[tuple[str, ...], tuple[str, ...]] = {}
    for entry in re.split(r"[;\n]", SYNONYMS_TEXT.strip()):
        keys, _, value = entry.rpartition(":")
        for key in keys.split("|"):
            table[tuple(key.split())] = _parse(value)
    return table


def build_lexicon() -> dict[tuple[str, ...], tuple[str, ...]]:
    """Map word tuples to emojis: emoji names and aliases, then the reviewed tables."""
    for language in LANGUAGES:
        emoji.config.load_language(language)
    ranked: dict[tuple[str, ...], dict[str, int]] = defaultdict(dict)
    english: dict[tuple[str, ...], str] = {}
    for char, data in emoji.EMOJI_DATA.items():
        if data["status"] != _FQ or _MODIFIERS.search(char):
            continue
        names = [(0, data["en"])] + [(1, a) for a in data.get("alias", [])]
        names += [(3, data[lang]) for lang in LANGUAGES if lang in data]
        for rank, name in names:
            words = _name_words(name)
            if words and (len(words) > 1 or len(words[0]) > 2):
                ranked[words][char] = min(rank, ranked[words].get(char, rank))
                if rank == 0:
                    english[words] = char
    for words, char in english.items():  # "dog face" also answers "dog"; "oncoming bus" "bus"
        base = words[:-1] if words[-1] == "face" else words[1:] if words[0] == "oncoming" else ()
        if base in english:
            ranked[base].setdefault(char, 2)
    lexicon = {
        words: tuple(sorted(chars, key=lambda c: chars[c]))
        for words, chars in ranked.items()
        if not (len(words) == 1 and words[0] in STOPWORDS | STOP_AT)
    }
    lexicon.update(synonyms())
    return lexicon


def _singulars(word: str) -> list[str]:
    forms = [word]
    if word.endswith("ies"):
        forms.append(word[:-3] + "y")
    if word.endswith("es"):
        forms.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss"):
        forms.append(word[:-1])
    return forms


def _under(folder: str, prefix: str) -> bool:
    return folder == prefix or folder.startswith(prefix + "/")


def _sense(word: str, folder: str) -> tuple[str, ...] | None:
    senses = FOLDER_SENSES.get(word, {})
    return next((_parse(e) for prefix, e in senses.items() if _under(folder, prefix)), None)


def match_words(
    tokens: list[str], lexicon: dict[tuple[str, ...], tuple[str, ...]], folder: str
) -> tuple[list[Match], list[str]]:
    """Greedy longest matches (up to four words) of the tokens against the lexicon.

    Matching stops at the first word of STOP_AT that is not inside a phrase. Returns the
    matches and the words read before stopping that no match covers.
    """
    matches: list[Match] = []
    unmatched: list[str] = []
    i = 0
    while i < len(tokens):
        found = None
        for n in range(min(4, len(tokens) - i), 0, -1):
            head, last = tuple(tokens[i : i + n - 1]), tokens[i + n - 1]
            for form in _singulars(last):
                found = lexicon.get((*head, form)) or (_sense(form, folder) if n == 1 else None)
                if found:
                    break
            if found:
                matches.append(Match(tuple(tokens[i : i + n]), found))
                i += n
                break
        if not found:
            if tokens[i] in STOP_AT:
                break
            unmatched.append(tokens[i])
            i += 1
    return matches, unmatched


def _is_flag(char: str) -> bool:
    if "\u200d" in char:
        return False
    return char.startswith("🏴") or all(0x1F1E6 <= ord(c) <= 0x1F1FF for c in char)


def label(rel_path: str, lexicon: dict[tuple[str, ...], tuple[str, ...]]) -> Match | None:
    """The one thing a picture's path names, or None when it names none or several."""
    if rel_path in FILE_LABELS:
        emojis = _parse(FILE_LABELS[rel_path])
        return Match(("(by eye)",), emojis) if emojis else None
    if rel_path.rsplit("/", 1)[-1] in DROP_NAMES:
        return None
    folder, _, name = rel_path.rpartition("/")
    tokens = tokenise(name.removesuffix(".png"))
    matches, unmatched = match_words(tokens, lexicon, folder)
    if "/flags" not in f"/{folder}":  # a country's name elsewhere names a map, not a flag
        matches = [m for m in matches if not _is_flag(m.emojis[0])]
    if any(m.emojis == VETO for m in matches) or CONJUNCTIONS & set(unmatched):
        return None  # vetoed, or "x and y": several things
    if not matches:
        for prefix, default in FOLDER_DEFAULTS.items():
            if _under(folder, prefix):
                return Match(tuple(tokenise(folder.rsplit("/", 1)[-1])), _parse(default))
        return None
    accept = list(matches[0].emojis)
    for group in map(_parse, GROUPS):
        if accept[0] == group[0]:
            accept += [e for e in group if e not in accept]
    if any(m.emojis[0] not in accept for m in matches[1:]):
        return None
    if _is_flag(accept[0]) and set(unmatched) - FILLER:
        return None  # a flag's file name must be the place's whole name
    words = tuple(w for m in matches for w in m.words)
    return Match(words, tuple(accept))


def _skipped_names(root: Path) -> set[str]:
    return {p.name for d in SKIP_DIRS for p in (root / d).rglob("*.png")}


def _usable(path: Path) -> bool:
    """Big enough to show something, small enough to decode (PNG header size)."""
    with path.open("rb") as f:
        width, height = struct.unpack(">II", f.read(24)[16:24])
    return bool(max(width, height) >= MIN_SIDE and width * height <= MAX_PIXELS)


def collect(root: Path) -> list[dict[str, object]]:
    """Label every picture under root, drop copies and specks, cap each first emoji."""
    lexicon = build_lexicon()
    skipped = _skipped_names(root)
    seen: set[str] = set()
    by_key: dict[str, list[dict[str, object]]] = defaultdict(list)
    for path in sorted(root.rglob("*.png")):
        rel = path.relative_to(root).as_posix()
        if path.name in skipped:
            continue
        found = label(rel, lexicon)
        if found is None or not _usable(path):
            continue
        digest = hashlib.sha1(path.read_bytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        first = found.emojis[0]
        by_key["flags" if _is_flag(first) else first].append(
            {
                "file": str(path),
                "accept": list(found.emojis),
                "category": rel.split("/", 1)[0],
                "words": " ".join(found.words),
            }
        )
    chosen: list[dict[str, object]] = []
    for key, entries in sorted(by_key.items()):
        cap = MAX_FLAGS if key == "flags" else MAX_PER_EMOJI
        if len(entries) > cap:
            entries = random.Random(f"{SEED}:{key}").sample(entries, cap)
        chosen += entries
    return sorted(chosen, key=lambda e: str(e["file"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="openclipart-png's PNG folder")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if not args.root.is_dir():
        parser.error(f"{args.root} not found: apt-get install openclipart-png")
    entries = collect(args.root)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(entries, ensure_ascii=False, indent=1)
    args.out.write_text(text + "\n", encoding="utf-8")
    emojis = {e for entry in entries for e in entry["accept"]}  # type: ignore[attr-defined]
    categories = {entry["category"] for entry in entries}
    print(f"{len(entries)} pictures, {len(emojis)} emojis, {len(categories)} categories")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
