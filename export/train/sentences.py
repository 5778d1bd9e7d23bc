"""Deterministic English sentences for the espeak-ng training corpus, written by a small grammar.

Why a grammar and not downloaded text: nothing can be fetched here, and a seeded generator gives the
same corpus on every machine. The vocabulary below (about a thousand words: names, places, people,
animals, things, food, adjectives, verbs with their irregular forms, adverbs, numbers written as
words) is the project's own. Sentences use only characters of the OpenSeq2Seq symbol table:
letters, space and ``. , ' ? ! ; "``; numbers are spelled out so the model never has to learn to
read digits. Lengths run from 3 to 30 words with a mean near 16, close to a LibriSpeech sentence
and still leaving plenty of short ones.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "Sentence",
    "SentenceSettings",
    "TRAIN",
    "HELDOUT",
    "ALLOWED_CHARACTERS",
    "DEMO_SENTENCE",
    "generate_sentences",
    "generate_texts",
    "split_sentences",
    "number_words",
    "word_count",
]

logger = logging.getLogger(__name__)

TRAIN = "train"
HELDOUT = "heldout"

ALLOWED_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,'?!;\"")
"""Every character a generated sentence may contain: a subset of ``OPENSEQ2SEQ_SYMBOLS``."""

DEMO_SENTENCE = "The harbour glowed like amber at dawn."
"""Spoken by the demo style clips; "glowed" and "amber" are not in the grammar's vocabulary, so this
sentence can never be generated (and hence never be trained on)."""


@dataclass(frozen=True)
class Sentence:
    """One sentence of the corpus; ``id`` is stable for a given seed (``s`` + generation index)."""

    id: str
    text: str
    split: str
    """``train`` or ``heldout``."""


@dataclass(frozen=True)
class SentenceSettings:
    """How many sentences to write and how to split them."""

    num_sentences: int = 3000
    """Total sentences, train plus held-out."""
    seed: int = 20261125
    heldout_fraction: float = 0.05
    min_heldout: int = 60
    """Floor on the held-out size (capped at half the sentences for tiny test sets)."""
    short_fraction: float = 0.15
    """Share of sentences drawn from the short range (3-7 words), so the model sees short inputs."""
    mean_long_words: float = 19.0
    """Mean target length of the other sentences (normal, sd 5.5, clipped to 6-30 words)."""

    def num_heldout(self) -> int:
        wanted = max(self.min_heldout, round(self.heldout_fraction * self.num_sentences))
        return min(wanted, self.num_sentences // 2)


# --------------------------------------------------------------------------------------------------
# Vocabulary. Entries are whitespace-separated; "_" joins multi-word items; "a/b" gives irregular forms.

_NAMES = """
Anna Tom Margaret Peter Susan James Lucy Daniel Emma Oliver Clara Henry Alice Samuel Rose Thomas
Grace Arthur Helen Edward Mary George Sarah William Laura Jack Ellen Robert Julia Frank Martha Paul
Nora Harry Emily Walter Ruth Charles Jane Albert Lily Simon Agnes Victor Molly Hugo Irene Leo Hannah
Felix Vera Oscar Ada Benjamin Rachel Isaac Sophie David Kate Michael Olivia Joseph Eleanor Patrick
Fiona Duncan Flora Ian Mabel Ralph Edith Stanley Dorothy Ernest Beatrice Luke Claire Adam Ivy
"""

_CITIES = """
London Paris Rome Edinburgh Dublin Boston Chicago Berlin Vienna Madrid Lisbon Oslo Cairo Glasgow York
Bristol Oxford Cambridge Manchester Denver Seattle Toronto Sydney Geneva Naples Venice Athens Prague
Warsaw Brussels Amsterdam Stockholm Helsinki Copenhagen Liverpool Aberdeen Belfast Montreal Quebec
Chester Bath Durham Lincoln Norwich Inverness Perth Dallas Portland Atlanta Memphis Phoenix
"""

_DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday"
_MONTHS = "January February March April May June July August September October November December"
_SEASONS = "spring summer autumn winter"

# Places that take "the": (noun, preposition used for "in/at/on the X").
_PLACES = """
station:at harbour:at market:at library:in school:at church:in bridge:on river:by forest:in
village:in castle:in garden:in kitchen:in hospital:at museum:in bakery:at farm:on hill:on lake:by
beach:on island:on valley:in mountains:in city:in office:in factory:at mill:at bank:at
post_office:at theatre:at park:in square:in cellar:in attic:in barn:in stable:in shop:in inn:at
hotel:at airport:at cottage:in tower:in cave:in meadow:in orchard:in shore:on camp:at palace:in
courtyard:in gate:at corner:on platform:on hall:in chapel:in workshop:in laboratory:in
classroom:in hallway:in lighthouse:in harbour_wall:on riverbank:on crossroads:at churchyard:in
vegetable_garden:in town_hall:at fire_station:at bus_stop:at playground:in swimming_pool:at
railway_bridge:under old_quarry:in woods:in fields:in canal:by pier:on jetty:on stairs:on
"""

# People: singular nouns (plural by rule unless given as "sing/plural").
_PEOPLE = """
teacher doctor farmer baker sailor neighbour stranger child/children boy girl woman/women man/men
soldier nurse driver captain student painter singer writer king queen priest judge guard merchant
fisherman/fishermen pilot clerk miner shepherd cook waiter lawyer musician officer mayor grandfather
grandmother uncle aunt cousin brother sister mother father friend visitor traveller engineer
scientist carpenter tailor hunter gardener servant prince princess knight thief/thieves poet actor
dancer porter postman/postmen keeper librarian butcher blacksmith fireman/firemen policeman/policemen
professor shopkeeper innkeeper ferryman/ferrymen widow pupil author artist inventor explorer
messenger watchman/watchmen climber swimmer rider banker builder weaver potter miller
"""

_FAMILY = "mother father brother sister uncle aunt cousin grandfather grandmother friend neighbour teacher"

_ANIMALS = """
dog cat horse cow sheep/sheep goat pig fox wolf/wolves bear rabbit mouse/mice owl crow duck
goose/geese hen eagle deer/deer frog fish/fish snake donkey pony kitten puppy lamb squirrel swan bee
butterfly whale seal tiger lion monkey parrot hedgehog badger otter robin sparrow pigeon beetle
spider tortoise camel elephant zebra giraffe penguin dolphin crab lobster
"""

_THINGS = """
book letter key box basket bag cup bottle lamp candle coat hat umbrella ring coin map clock watch
knife/knives spoon plate bowl kettle hammer rope ladder bucket brush pencil notebook newspaper
photograph picture blanket pillow chair table mirror parcel ticket wallet radio camera guitar violin
drum flute ball kite toy flag sword shield barrel sack jar glove scarf jacket boot belt ribbon
necklace envelope stamp fork pan pot needle thread button shovel axe saw nail chain bell whistle
compass telescope lantern suitcase trunk crate tray jug towel curtain carpet rug shelf/shelves
bicycle wagon cart boat canoe sledge wheel cushion diary calendar dictionary album painting statue
vase teapot saucer handkerchief purse bracelet brooch medal trophy helmet cloak apron sandal slipper
stool bench cupboard drawer window door fence gate_key paintbrush typewriter piano trumpet harp
"""

_FOOD = """
bread cheese soup cake pie butter honey jam rice porridge pudding stew chocolate milk tea coffee
lemonade sugar flour salt pepper meat bacon ham toast cream custard jelly
"""

_FOOD_COUNT = """
apple egg sausage biscuit orange pear plum cherry/cherries berry/berries grape lemon bean pea
potato/potatoes tomato/tomatoes carrot onion sandwich nut cabbage pancake muffin bun pastry/pastries
peach strawberry/strawberries turnip radish/radishes
"""

_WRITINGS = "letter note story poem song message postcard report recipe list diary_entry speech invitation"

_ADJ_THING = """
old new small large heavy light red blue green yellow white black brown grey golden silver wooden
broken empty full clean dirty bright dark warm cold soft hard long short narrow wide tiny huge
strange beautiful ugly quiet noisy famous ancient modern simple rusty shiny dusty wet dry sharp
smooth rough round square thin thick cheap expensive precious useful useless familiar secret hidden
lost favourite lovely pretty plain fancy peculiar enormous delicate fragile sturdy faded crooked
painted polished torn muddy frozen battered elegant gleaming
"""

_ADJ_PERSON = """
kind clever brave young old tired hungry happy sad angry nervous proud shy patient honest polite
cheerful lonely busy lazy careful careless gentle stubborn wise foolish friendly anxious calm
generous grumpy quiet worried excited surprised sleepy serious handsome elderly curious cautious
thoughtful restless jolly weary bold modest
"""

_ADJ_FOOD = "fresh ripe sweet bitter sour salty hot spicy delicious warm cold stale crisp juicy"

_ADJ_WEATHER = """
cold warm windy rainy sunny foggy cloudy bright chilly frosty stormy mild damp grey pleasant lovely
"""

_ADVERBS = """
quickly slowly carefully quietly loudly gently suddenly happily sadly angrily patiently nervously
proudly softly firmly politely eagerly calmly silently bravely clumsily gracefully cheerfully
briskly lazily anxiously easily quietly kindly warmly sharply boldly secretly openly rather_slowly
very_carefully
"""

# Verbs: "base" for regular ones, "base/past/participle" for irregular ones.
_V_THINGS = """
carry find/found/found lose/lost/lost open close fix mend break/broke/broken buy/bought/bought
sell/sold/sold bring/brought/brought take/took/taken hold/held/held lift drop push pull clean wash
paint hide/hid/hidden keep/kept/kept borrow pack polish wrap fold fill empty hang/hung/hung check
count examine share steal/stole/stolen return throw/threw/thrown catch/caught/caught drag
want need like admire repair guard move leave/left/left forget/forgot/forgotten notice describe
weigh inspect measure
"""

_V_FOOD = """
eat/ate/eaten cook bake buy/bought/bought sell/sold/sold taste share prepare serve cut/cut/cut
bring/brought/brought carry order want boil slice finish like enjoy
"""

_V_PEOPLE = """
meet/met/met visit call help thank greet warn follow remember forget/forgot/forgotten ask answer
invite watch teach/taught/taught chase find/found/found recognise trust believe ignore admire pay/paid/paid
hear/heard/heard see/saw/seen telephone interrupt encourage comfort surprise miss introduce
"""

_V_ANIMALS = """
feed/fed/fed watch chase follow catch/caught/caught see/saw/seen find/found/found hear/heard/heard
wash brush count photograph frighten rescue draw/drew/drawn notice chase
"""

_V_PLACES = "visit leave/left/left reach explore clean paint find/found/found see/saw/seen describe guard photograph"

_V_WRITINGS = """
read/read/read write/wrote/written sign send/sent/sent post receive copy finish burn/burnt/burnt
tear/tore/torn fold open forget/forgot/forgotten remember recite
"""

_V_INTRANSITIVE = """
sleep/slept/slept laugh smile cry wait rest shout whisper sigh listen work hesitate nod wave shiver
yawn cough sneeze wander pause agree complain arrive fall/fell/fallen sit/sat/sat stand/stood/stood
speak/spoke/spoken swim/swam/swum run/ran/run hurry stumble tremble dance sing/sang/sung frown
blush giggle grumble kneel/knelt/knelt pray remain disappear vanish recover relax
"""

_V_MOTION = """
walk run/ran/run hurry travel drive/drove/driven ride/rode/ridden sail fly/flew/flown return
go/went/gone come/came/come wander march rush move cycle row hike stroll
"""

_DOUBLING = frozenset("stop plan drop grab hug nod shop step rob jog skip clap run swim cut sit travel".split())

_TIME_PHRASES = """
yesterday today tomorrow last_night this_morning this_afternoon in_the_evening at_dawn at_noon
at_midnight before_dawn after_dinner after_lunch before_breakfast every_day once_a_week
a_long_time_ago the_next_morning later_that_day soon just_now at_last in_the_end by_the_evening
every_year on_the_first_day last_year next_week
"""

_CONJUNCTIONS = "and but because while although when so after before until since as_soon_as"

_INTERJECTIONS = "Oh Well Look Listen Goodness Honestly Indeed Alas Hey Now"

_EXCLAIMS = """
What_a_surprise Hurry_up Watch_out Come_quickly Stop_that Be_careful Look_out Well_done
How_wonderful Good_heavens Never_mind Thank_goodness Not_again Of_course Wait_for_me
"""

_SPEECH_VERBS = "said replied whispered answered shouted called explained added muttered insisted admitted"
_ASK_VERBS = "asked wondered inquired demanded"
_CRY_VERBS = "cried shouted exclaimed yelled called"


def _words(block: str) -> tuple[str, ...]:
    return tuple(w.replace("_", " ") for w in block.split())


_VOWEL_SOUND_EXCEPTIONS_A = frozenset("one once unicorn uniform university useful useless usual european".split())
_VOWEL_SOUND_EXCEPTIONS_AN = frozenset("hour honest honour heir".split())

# --------------------------------------------------------------------------------------------------
# Morphology


@dataclass(frozen=True)
class _Noun:
    singular: str
    plural: str | None
    """``None`` for mass nouns (bread, tea), which never take "a" or a plural."""


@dataclass(frozen=True)
class _Verb:
    base: str
    past: str
    participle: str
    third: str
    ing: str


def _plural(word: str) -> str:
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in ("a", "e", "i", "o", "u"):
        return word[:-1] + "ies"
    return word + "s"


def _nouns(block: str, *, mass: bool = False) -> tuple[_Noun, ...]:
    nouns = []
    for item in _words(block):
        if mass:
            nouns.append(_Noun(item, None))
        elif "/" in item:
            singular, plural = item.split("/")
            nouns.append(_Noun(singular, plural))
        else:
            # Plural of the last word in a compound ("gate key" -> "gate keys").
            head, _, last = item.rpartition(" ")
            nouns.append(_Noun(item, (head + " " if head else "") + _plural(last)))
    return tuple(nouns)


def _regular_past(base: str) -> str:
    if base in _DOUBLING:
        return base + base[-1] + "ed"
    if base.endswith("e"):
        return base + "d"
    if base.endswith("y") and base[-2] not in "aeiou":
        return base[:-1] + "ied"
    return base + "ed"


def _ing(base: str) -> str:
    if base in _DOUBLING:
        return base + base[-1] + "ing"
    if base.endswith("ie"):
        return base[:-2] + "ying"
    if base.endswith("e") and not base.endswith(("ee", "ye", "oe")):
        return base[:-1] + "ing"
    return base + "ing"


def _third(base: str) -> str:
    special = {"go": "goes", "do": "does", "have": "has"}
    if base in special:
        return special[base]
    return _plural(base)


def _verbs(block: str) -> tuple[_Verb, ...]:
    verbs = []
    seen = set()
    for item in _words(block):
        parts = item.split("/")
        base = parts[0]
        if base in seen:
            continue
        seen.add(base)
        past, participle = (parts[1], parts[2]) if len(parts) == 3 else (_regular_past(base),) * 2
        verbs.append(_Verb(base, past, participle, _third(base), _ing(base)))
    return tuple(verbs)


def _article(phrase: str) -> str:
    first = phrase.split()[0].lower()
    if first in _VOWEL_SOUND_EXCEPTIONS_A:
        return "a"
    if first in _VOWEL_SOUND_EXCEPTIONS_AN or first[0] in "aeiou":
        return "an"
    return "a"


_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """English words for 0 <= n < 1,000,000 ("three hundred and twelve")."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"number_words supports 0..999999, got {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (" " + _ONES[ones] if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + (" and " + number_words(rest) if rest else "")
    thousands, rest = divmod(n, 1000)
    tail = ""
    if rest:
        tail = (" and " if rest < 100 else " ") + number_words(rest)
    return number_words(thousands) + " thousand" + tail


def _year_words(year: int) -> str:
    """How a year is read aloud: 1912 -> "nineteen twelve", 1905 -> "nineteen oh five"."""
    high, low = divmod(year, 100)
    if low == 0:
        return number_words(high) + " hundred"
    return number_words(high) + " " + ("oh " + _ONES[low] if low < 10 else number_words(low))


def word_count(text: str) -> int:
    return len(text.split())


# --------------------------------------------------------------------------------------------------
# Grammar


@dataclass(frozen=True)
class _Subject:
    text: str
    person: int
    """1, 2 or 3: chooses am/are/is and the -s of the present tense."""
    plural: bool

    @property
    def third_singular(self) -> bool:
        return self.person == 3 and not self.plural


class _Grammar:
    """Builds sentences from the vocabulary with one seeded ``random.Random``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.names = _words(_NAMES)
        self.cities = _words(_CITIES)
        self.days = _words(_DAYS)
        self.months = _words(_MONTHS)
        self.seasons = _words(_SEASONS)
        self.places = tuple(tuple(p.split(":")) for p in _words(_PLACES))
        self.people = _nouns(_PEOPLE)
        self.family = _words(_FAMILY)
        self.animals = _nouns(_ANIMALS)
        self.things = _nouns(_THINGS)
        self.food = _nouns(_FOOD, mass=True) + _nouns(_FOOD_COUNT)
        self.writings = _nouns(_WRITINGS)
        self.adj_thing = _words(_ADJ_THING)
        self.adj_person = _words(_ADJ_PERSON)
        self.adj_food = _words(_ADJ_FOOD)
        self.adj_weather = _words(_ADJ_WEATHER)
        self.adverbs = _words(_ADVERBS)
        self.time_phrases = _words(_TIME_PHRASES)
        self.conjunctions = _words(_CONJUNCTIONS)
        self.interjections = _words(_INTERJECTIONS)
        self.exclaims = _words(_EXCLAIMS)
        self.speech_verbs = _words(_SPEECH_VERBS)
        self.ask_verbs = _words(_ASK_VERBS)
        self.cry_verbs = _words(_CRY_VERBS)
        # Each transitive verb group with the noun phrases it may take.
        self.transitive: tuple[tuple[tuple[_Verb, ...], Callable[[], str]], ...] = (
            (_verbs(_V_THINGS), lambda: self.noun_phrase(self.things, self.adj_thing)),
            (_verbs(_V_FOOD), lambda: self.noun_phrase(self.food, self.adj_food)),
            (_verbs(_V_PEOPLE), self.person_object),
            (_verbs(_V_ANIMALS), lambda: self.noun_phrase(self.animals, self.adj_thing)),
            (_verbs(_V_PLACES), self.place_object),
            (_verbs(_V_WRITINGS), lambda: self.noun_phrase(self.writings, self.adj_thing)),
        )
        self.intransitive = _verbs(_V_INTRANSITIVE)
        self.motion = _verbs(_V_MOTION)

    # -- helpers -----------------------------------------------------------------------------------
    def pick(self, items: Sequence[str]) -> str:
        return self.rng.choice(items)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def number(self, low: int = 2, high: int = 12) -> str:
        return number_words(self.rng.randint(low, high))

    # -- noun phrases ------------------------------------------------------------------------------
    def noun_phrase(self, nouns: Sequence[_Noun], adjectives: Sequence[str]) -> str:
        noun = self.rng.choice(nouns)
        adjective = self.pick(adjectives) + " " if self.chance(0.45) else ""
        if noun.plural is None:
            det = self.pick(("the", "some", "the", "my", "our", "their"))
            return f"{det} {adjective}{noun.singular}"
        if self.chance(0.3):
            det = self.rng.choice(("the", "some", "several", "many", "a few", "those", "these", "my", "her", "his",
                                   "their", "our", "NUM", "NUM", "NAME"))
            if det == "NUM":
                det = self.number()
            elif det == "NAME":
                det = self.pick(self.names) + "'s"
            return f"{det} {adjective}{noun.plural}"
        det = self.rng.choice(("the", "the", "a", "a", "this", "that", "my", "your", "his", "her", "our", "NAME"))
        if det == "a":
            det = _article(adjective + noun.singular)
        elif det == "NAME":
            det = self.pick(self.names) + "'s"
        return f"{det} {adjective}{noun.singular}"

    def person_object(self) -> str:
        roll = self.rng.random()
        if roll < 0.35:
            return self.pick(self.names)
        if roll < 0.5:
            return self.pick(("me", "him", "her", "us", "them", "you"))
        if roll < 0.65:
            return self.pick(("my", "his", "her", "our", "their", "your")) + " " + self.pick(self.family)
        return self.noun_phrase(self.people, self.adj_person)

    def place_object(self) -> str:
        if self.chance(0.3):
            return self.pick(self.cities)
        noun, _ = self.rng.choice(self.places)
        adjective = self.pick(self.adj_thing) + " " if self.chance(0.3) else ""
        return f"the {adjective}{noun}"

    def place_phrase(self) -> str:
        """Where something happened: "in the old barn", "by the river", "in Glasgow"."""
        if self.chance(0.25):
            return self.pick(("in", "near", "outside", "far from")) + " " + self.pick(self.cities)
        noun, prep = self.rng.choice(self.places)
        if self.chance(0.25):
            prep = self.pick(("near", "behind", "beside", "outside", "inside", "across from", "close to"))
        adjective = self.pick(self.adj_thing) + " " if self.chance(0.3) else ""
        return f"{prep} the {adjective}{noun}"

    def destination(self) -> str:
        if self.chance(0.3):
            return "to " + self.pick(self.cities)
        if self.chance(0.1):
            return self.pick(("home", "back home", "upstairs", "downstairs", "outside", "away"))
        noun, _ = self.rng.choice(self.places)
        return self.pick(("to", "towards", "across", "past", "through", "along", "around")) + " the " + noun

    def time_phrase(self) -> str:
        roll = self.rng.random()
        if roll < 0.35:
            return self.pick(self.time_phrases)
        if roll < 0.5:
            return "on " + self.pick(self.days) + self.pick(("", "", " morning", " evening", " afternoon"))
        if roll < 0.6:
            return "in " + self.pick(self.months) if self.chance(0.5) else "in the " + self.pick(self.seasons)
        if roll < 0.72:
            hour = self.pick(_ONES[1:13])
            return "at " + self.pick((f"{hour} o'clock", f"half past {hour}", f"a quarter to {hour}",
                                      f"a quarter past {hour}", f"{hour} o'clock sharp"))
        if roll < 0.82:
            return "in " + _year_words(self.rng.randint(1820, 1999))
        if roll < 0.92:
            unit = self.pick(("minutes", "hours", "days", "weeks", "years"))
            return self.number(2, 60) + " " + unit + " " + self.pick(("later", "ago", "earlier"))
        return "for " + self.number(2, 30) + " " + self.pick(("minutes", "hours", "days", "weeks"))

    def subject(self) -> _Subject:
        roll = self.rng.random()
        if roll < 0.3:
            return _Subject(self.pick(self.names), 3, False)
        if roll < 0.5:
            pronoun = self.pick(("I", "you", "he", "she", "we", "they"))
            person = {"I": 1, "you": 2, "we": 1, "they": 3}.get(pronoun, 3)
            return _Subject(pronoun, person, pronoun in ("you", "we", "they"))
        if roll < 0.62:
            return _Subject(self.pick(self.names) + " and " + self.pick(self.names), 3, True)
        if roll < 0.72:
            owner = self.pick(("my", "his", "her", "our", "their", "your"))
            return _Subject(owner + " " + self.pick(self.family), 3, False)
        if roll < 0.85:
            phrase = self.noun_phrase(self.people, self.adj_person)
        else:
            phrase = self.noun_phrase(self.animals, self.adj_thing)
        plural = phrase.split()[-1] in {n.plural for n in self.people + self.animals if n.plural != n.singular}
        return _Subject(phrase, 3, plural)

    # -- verb phrases ------------------------------------------------------------------------------
    def be(self, subject: _Subject, tense: str) -> str:
        if tense == "past":
            return "was" if (subject.person != 2 and not subject.plural) else "were"
        if subject.person == 1 and not subject.plural:
            return "am"
        return "is" if subject.third_singular else "are"

    def predicate(self, subject: _Subject, budget: int) -> str:
        """A verb phrase in a random tense and aspect, grown with extras while the budget lasts."""
        kind = self.rng.random()
        if kind < 0.55:
            verbs, make_object = self.rng.choice(self.transitive)
            verb = self.rng.choice(verbs)
            complement = make_object()
        elif kind < 0.75:
            verb = self.rng.choice(self.motion)
            complement = self.destination()
        elif kind < 0.9:
            verb = self.rng.choice(self.intransitive)
            complement = ""
        else:
            adjective = self.pick(self.adj_person if self.chance(0.7) else self.adj_thing)
            tense = self.pick(("past", "past", "present"))
            adverb = self.pick(("", "", "very ", "rather ", "quite ", "not ", "never "))
            if tense == "present" and adverb == "not " and self.chance(0.5):
                be = {"is": "isn't", "are": "aren't", "am": "am not"}[self.be(subject, tense)]
                return f"{be} {adjective}"
            return f"{self.be(subject, tense)} {adverb}{adjective}"
        form = self.rng.random()
        if form < 0.45:
            verb_text = verb.past
        elif form < 0.55:
            verb_text = verb.third if subject.third_singular else verb.base
        elif form < 0.63:
            verb_text = self.pick(("did not", "didn't", "never")) + " " + verb.base if self.chance(0.5) else \
                (("doesn't " if subject.third_singular else "don't ") + verb.base)
            if verb_text.startswith("never"):
                verb_text = "never " + verb.past
        elif form < 0.73:
            verb_text = self.pick(("will", "would", "could", "should", "must", "might", "can't", "won't",
                                   "couldn't", "wouldn't", "may")) + " " + verb.base
        elif form < 0.85:
            verb_text = self.be(subject, "past" if self.chance(0.7) else "present") + " " + verb.ing
        elif form < 0.93:
            have = "has" if subject.third_singular else "have"
            verb_text = self.pick((have, "had", have + " never", "had already")) + " " + verb.participle
        else:
            verb_text = self.pick(("wanted to", "tried to", "had to", "decided to", "forgot to", "hoped to",
                                   "promised to", "used to", "began to")) + " " + verb.base
        phrase = f"{verb_text} {complement}".strip()
        return self.grow(phrase, budget)

    def grow(self, phrase: str, budget: int) -> str:
        """Adds adverbs, places, times and "with" phrases while they fit the word budget."""
        extras = [self.adverb_extra, self.place_extra, self.time_extra, self.with_extra, self.purpose_extra]
        self.rng.shuffle(extras)
        for extra in extras:
            if word_count(phrase) >= budget:
                break
            addition = extra()
            if word_count(phrase) + word_count(addition) <= budget + 1:
                phrase = f"{phrase} {addition}"
        return phrase

    def adverb_extra(self) -> str:
        return self.pick(self.adverbs)

    def place_extra(self) -> str:
        return self.place_phrase()

    def time_extra(self) -> str:
        return self.time_phrase()

    def with_extra(self) -> str:
        if self.chance(0.5):
            return "with " + self.person_object()
        return self.pick(("with", "without")) + " " + self.noun_phrase(self.things, self.adj_thing)

    def purpose_extra(self) -> str:
        verbs, make_object = self.rng.choice(self.transitive)
        return "to " + self.rng.choice(verbs).base + " " + make_object()

    def clause(self, budget: int) -> str:
        subject = self.subject()
        roll = self.rng.random()
        if roll < 0.06:
            return self.there_clause(budget)
        if roll < 0.1:
            weather = self.pick(self.adj_weather)
            if self.chance(0.3):
                return f"it is {weather} {self.pick(('today', 'again', 'outside', 'this morning', 'in the hills'))}"
            return f"it {self.pick(('was', 'had been'))} {weather} {self.time_phrase()}"
        if roll < 0.16:
            knower = self.subject()
            verb = self.pick(("thought", "knew", "believed", "said", "hoped", "noticed", "suspected", "felt"))
            inner = self.clause(max(3, budget - 3))
            return f"{knower.text} {verb} {self.pick(('that ', ''))}{inner}"
        return f"{subject.text} {self.predicate(subject, max(1, budget - word_count(subject.text)))}"

    def there_clause(self, budget: int) -> str:
        if self.chance(0.5):
            noun = self.rng.choice(self.things + self.animals)
            adjective = self.pick(self.adj_thing) if self.chance(0.6) else ""
            words = f"{adjective} {noun.singular}".strip()
            head = f"there {self.pick(('was', 'is'))} {_article(words)} {words}"
        else:
            noun = self.rng.choice([n for n in self.things + self.animals if n.plural])
            head = f"there {self.pick(('were', 'are'))} {self.number()} {noun.plural}"
        return self.grow(head + " " + self.place_phrase(), budget)

    # -- sentences ---------------------------------------------------------------------------------
    def statement(self, target: int) -> str:
        first_budget = target if target <= 12 or self.chance(0.3) else self.rng.randint(5, max(5, target - 5))
        text = self.clause(first_budget)
        while word_count(text) < target - 3:
            remaining = target - word_count(text) - 1
            if self.chance(0.12) and remaining >= 4:
                text += "; " + self.clause(remaining)
                continue
            conjunction = self.pick(self.conjunctions)
            joiner = ", " if conjunction in ("but", "so", "although", "while") or self.chance(0.3) else " "
            text += f"{joiner}{conjunction} {self.clause(max(3, remaining))}"
        return text

    def question(self, target: int) -> str:
        subject = self.subject()
        roll = self.rng.random()
        if roll < 0.3:
            verbs, make_object = self.rng.choice(self.transitive)
            verb = self.rng.choice(verbs)
            aux = self.pick(("did", "will", "could", "should", "can", "would", "didn't", "won't"))
            if aux == "did" and subject.third_singular and self.chance(0.3):
                aux = "does"
            if aux == "did" and not subject.third_singular and self.chance(0.3):
                aux = "do"
            wh = self.pick(("", "", "why ", "when ", "where ", "how "))
            body = self.grow(f"{subject.text} {verb.base} {make_object()}", max(3, target - 2))
            return f"{wh}{aux} {body}?"
        if roll < 0.45:
            noun = self.noun_phrase(self.things + self.animals, self.adj_thing)
            verb = "were" if noun.split()[-1] in {n.plural for n in self.things + self.animals} else "was"
            return f"{self.pick(('where', 'why', 'how long'))} {verb} {noun}" + (
                " " + self.time_phrase() if target > 7 else "") + "?"
        if roll < 0.55:
            nouns = [n for n in self.things + self.animals + self.people if n.plural]
            noun = self.rng.choice(nouns)
            verbs, _ = self.rng.choice(self.transitive[:4])
            tail = self.grow("", max(0, target - 7)).strip()
            verb = self.rng.choice(verbs).base
            return f"how many {noun.plural} did {subject.text} {verb}{' ' + tail if tail else ''}?"
        if roll < 0.65:
            return "is it true that " + self.clause(max(3, target - 4)) + "?"
        if roll < 0.75:
            who = self.pick(("who", "what", "which of them"))
            verbs, make_object = self.rng.choice(self.transitive)
            return self.grow(f"{who} {self.rng.choice(verbs).past} {make_object()}", max(3, target - 1)) + "?"
        if roll < 0.87:
            clause = self.clause(max(3, target - 2))
            return clause + ", " + self.pick(("don't you think", "isn't that so", "don't you agree", "don't you think",
                                              "wouldn't you say", "right", "you see", "I wonder")) + "?"
        start = self.pick(("are you", "were you", "aren't you", "is she", "was he", "weren't they"))
        tail = " " + self.time_phrase() if target > 6 else ""
        return f"{start} {self.pick(self.adj_person)}{tail}?"

    def exclamation(self, target: int) -> str:
        roll = self.rng.random()
        if roll < 0.25:
            noun = self.noun_phrase(self.things + self.animals, self.adj_thing).split()[-1]
            adjective = self.pick(self.adj_thing)
            tail = self.pick(("that is", "it was", "you have", "they found"))
            return f"what {_article(adjective)} {adjective} {noun} {tail}!"
        if roll < 0.45:
            return f"{self.pick(self.exclaims)}, {self.pick(self.names)}!"
        if roll < 0.65:
            return f"{self.pick(self.interjections)}, {self.statement(max(4, target - 1))}!"
        if roll < 0.8:
            adjective = self.pick(self.adj_thing + self.adj_weather)
            return f"how {adjective} {self.pick(('it is', 'it was', 'they were', 'you look'))}!"
        verb = self.pick(("look at", "listen to", "never mind", "mind"))
        return f"{verb} {self.noun_phrase(self.things + self.animals, self.adj_thing)}!"

    def quoted(self, target: int) -> str:
        speaker = self.pick(self.names) if self.chance(0.6) else "the " + self.rng.choice(self.people).singular
        inner_target = max(3, target - 3)
        roll = self.rng.random()
        if roll < 0.4:
            verb = self.pick(self.speech_verbs)
            return f'{speaker} {verb}, "{_capitalise(self.statement(inner_target))}."'
        if roll < 0.6:
            return f'"{_capitalise(self.question(inner_target))}" {self.pick(self.ask_verbs)} {speaker}.'
        if roll < 0.75:
            return f'"{_capitalise(self.exclamation(inner_target))}" {self.pick(self.cry_verbs)} {speaker}.'
        if roll < 0.9:
            return f'"{_capitalise(self.statement(inner_target))}," {speaker} {self.pick(self.speech_verbs)}.'
        half = max(3, inner_target // 2)
        return (f'"{_capitalise(self.clause(half))}," {self.pick(self.speech_verbs)} {speaker}, '
                f'"{self.pick(("and", "but", "so"))} {self.clause(half)}."')

    def short(self) -> str:
        """Three to seven words, so the model also learns to stop early."""
        roll = self.rng.random()
        name = self.pick(self.names)
        if roll < 0.2:
            verb = self.rng.choice(self.intransitive)
            return f"{name} {verb.past}{' ' + self.pick(self.adverbs) if self.chance(0.5) else ''}."
        if roll < 0.35:
            return f"where is {self.pick((name, 'the ' + self.rng.choice(self.things).singular))}?"
        if roll < 0.45:
            return f"{self.pick(self.exclaims)}!"
        if roll < 0.55:
            return f"it's {self.pick(self.adj_weather)} {self.pick(('outside', 'today', 'tonight', 'again'))}."
        if roll < 0.65:
            return f"{self.pick(('come here', 'sit down', 'hurry up', 'wake up', 'listen', 'thank you'))}, {name}!"
        if roll < 0.75:
            noun = self.rng.choice(self.animals).singular
            return f"the {noun} {self.rng.choice(self.intransitive).past}."
        if roll < 0.85:
            who = self.pick(("nobody", "everyone", "somebody", "no one"))
            return f"{who} {self.rng.choice(self.intransitive).past}."
        if roll < 0.93:
            who = self.pick(("I", "we", "they"))
            negation = self.pick(("don't", "didn't", "can't", "won't"))
            verb = self.rng.choice(self.motion).base
            return f"{who} {negation} {verb} {self.destination()}."
        return f"{name} was {self.pick(self.adj_person)}."

    def sentence(self, target: int) -> str:
        if target <= 5:
            return _capitalise(self.short())
        roll = self.rng.random()
        if roll < 0.62:
            text = self.statement(target) + "."
        elif roll < 0.78:
            text = self.question(target)
        elif roll < 0.86:
            text = self.exclamation(target)
        else:
            text = self.quoted(target)
        return _capitalise(text)


def _capitalise(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        return text
    if text[0] == '"':
        return '"' + _capitalise(text[1:])
    return text[0].upper() + text[1:]


def _dedupe_key(text: str) -> str:
    """Sentences that differ only in case or punctuation are the same sentence to the model."""
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


def generate_texts(settings: SentenceSettings) -> list[str]:
    """``settings.num_sentences`` unique sentences; a smaller count gives a prefix of a larger one."""
    rng = random.Random(settings.seed)
    grammar = _Grammar(rng)
    texts: list[str] = []
    seen: set[str] = set()
    attempts = 0
    max_attempts = 50 * settings.num_sentences + 1000
    while len(texts) < settings.num_sentences:
        attempts += 1
        if attempts > max_attempts:
            raise RuntimeError(f"sentence grammar produced only {len(texts)} unique sentences in {attempts} attempts")
        if rng.random() < settings.short_fraction:
            low, high = 3, 7
            target = rng.randint(low, high)
        else:
            low, high = 6, 30
            target = min(high, max(low, round(rng.gauss(settings.mean_long_words, 5.5))))
        text = grammar.sentence(target)
        # Long targets may overshoot a little; out-of-range sentences are redrawn, not truncated.
        if not 3 <= word_count(text) <= 30 or not set(text) <= ALLOWED_CHARACTERS:
            continue
        key = _dedupe_key(text)
        if key in seen or key == _dedupe_key(DEMO_SENTENCE):
            continue
        seen.add(key)
        texts.append(text)
    return texts


def split_sentences(texts: Sequence[str], num_heldout: int, seed: int) -> list[Sentence]:
    """Held-out = the ``num_heldout`` texts with the smallest seeded hash: stable, order independent."""
    if not 0 <= num_heldout < max(1, len(texts)):
        raise ValueError(f"cannot hold out {num_heldout} of {len(texts)} sentences")

    def rank(text: str) -> bytes:
        return hashlib.blake2b(f"{seed}\x1f{_dedupe_key(text)}".encode(), digest_size=8).digest()

    heldout = set(sorted(range(len(texts)), key=lambda i: rank(texts[i]))[:num_heldout])
    return [Sentence(f"s{i:05d}", text, HELDOUT if i in heldout else TRAIN) for i, text in enumerate(texts)]


def generate_sentences(settings: SentenceSettings | None = None) -> list[Sentence]:
    """The corpus sentences, generated and split; identical for identical settings."""
    settings = settings or SentenceSettings()
    if settings.num_sentences < 2:
        raise ValueError(f"need at least 2 sentences (one train, one held-out), got {settings.num_sentences}")
    texts = generate_texts(settings)
    sentences = split_sentences(texts, settings.num_heldout(), settings.seed)
    logger.debug("generated %d sentences (%d held out)", len(sentences), settings.num_heldout())
    return sentences


def vocabulary_size() -> int:
    """Distinct words the grammar can use (a rough measure of its variety)."""
    blocks: Iterable[str] = (
        _NAMES, _CITIES, _DAYS, _MONTHS, _SEASONS, _PLACES, _PEOPLE, _ANIMALS, _THINGS, _FOOD, _FOOD_COUNT,
        _WRITINGS, _ADJ_THING, _ADJ_PERSON, _ADJ_FOOD, _ADJ_WEATHER, _ADVERBS, _V_THINGS, _V_FOOD, _V_PEOPLE,
        _V_ANIMALS, _V_PLACES, _V_WRITINGS, _V_INTRANSITIVE, _V_MOTION, _TIME_PHRASES, _CONJUNCTIONS,
    )
    words: set[str] = set()
    for block in blocks:
        words.update(w.lower() for w in re.split(r"[\s_/:]+", block) if w)
    return len(words)
