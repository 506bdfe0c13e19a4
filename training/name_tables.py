"""The reviewed word tables of picture-name matching (:mod:`training.names`): which words stop a
name, which never name a picture, synonyms and phrases, and words whose sense depends on the
folder. Written for Debian's openclipart-png, whose authors name files in English, Italian,
French and Spanish; shared by the strict benchmark labeller (``scripts/build_clipart_set.py``)
and the weak training labeller.
"""

from __future__ import annotations

__all__ = [
    "AUTHORS",
    "CATEGORY_FOLDERS",
    "CONJUNCTIONS",
    "FALSE_FRIENDS",
    "FILLER",
    "FOLDER_SENSES",
    "LANGUAGES",
    "PREPOSITIONS",
    "STOPWORDS",
    "STOP_AT",
    "SYNONYMS_TEXT",
    "VETO",
    "WEAK_LANGUAGES",
    "WEAK_SYNONYMS_TEXT",
]


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


LANGUAGES = ("it", "fr", "es")  # the ``emoji`` package's names used besides English
VETO = ("!",)

# Matching stops at these words: authors' names (whatever follows is the rest of the name)
# and prepositions (whatever follows qualifies the thing named before: "dog on leash").
AUTHORS = _wordset(
    """
architetto architett architet archite archit archi arch francesco rollandin frolland jean toh
nicolas benji susan linda matthew william nicu gerald jarno juliane yves hash dave marcin ganson
peterm mimooh zazou
"""
)
PREPOSITIONS = _wordset(
    """
of with on in under from for at into di da del della dei con per sulla sul nella nel al alla sur
du des de au aux avec
"""
)
STOP_AT = AUTHORS | PREPOSITIONS
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

# -- the weak labeller's additions (training.names.name_labels) -------------------------------

WEAK_LANGUAGES = ("it", "fr", "es", "de", "pt")
# Reviewed phrases for the weak labeller, as in SYNONYMS_TEXT ("!" names nothing).
WEAK_SYNONYMS_TEXT = """
stars: ⭐; map: 🗺️; roller blader: 🛼; housecats: 🐈 🐱; nodding donkey: !
"""
# Names and keywords that mislead in picture names: removed from the weak lexicon.
FALSE_FRIENDS = _wordset(
    """
left right up down south north east west view reverse head bullet soft part small protection
decorated set gold female male slice danger sand roller record happy ink banner david reload
vertical jack you bored help come stand lie inside low split turn curve break landscape field
military security hide electronic munch emblem evolution empty board dead mortar nail crosse
cartes soares toy icicles manga ganso cobra heel van
"""
)
# Folder names that are categories, not depictions: they label nothing.
CATEGORY_FOLDERS = _wordset(
    """
computer applications emblems stock lemon-theme containers decorations electronics dairy office
toys disability africa america asia europe oceania map_symbols weather big_cats pirates
"""
)
