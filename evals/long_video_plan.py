"""A generated long-video benchmark, planned: what a 21-minute video shows and says, and 5-choice questions.

The video is a sequence of 10-second segments at 320x240 and 2 fps, each about one topic (the
lighthouse, the bakery, ...) named in its subtitles. A segment shows one of:

- a coloured shape drawn like easy-VQA's (a circle, rectangle or triangle in one of its eight
  colours on a pale background), so the projector bridge trained on easy-VQA can read it;
- a text card (a chapter title);
- an excerpt of one of the real videos in `../shared/data/video` (when present), looped and resized.

Every segment carries one question, of one of four kinds (three without the spoken track,
`GenConfig.speech=False`):

- `subtitles`: a fact said in the subtitles ("the lighthouse has a dog called Biscuit"); the frames
  do not show it;
- `frames`: the colour or shape on screen while the subtitles talk about a topic; the subtitles never
  say it;
- `both`: a shape's name (said) and its colour (shown): choices pair colours with names
  (`red, called Momo`) so that each source alone narrows the five choices to three;
- `speech`: a fact of the same kind as `subtitles`, said only on the soundtrack (espeak-ng, see
  `mmrag.evals.long_video_speech`): the segment has no subtitles, so only speech to text finds it.

Everything is drawn from one seeded generator, so a seed gives the same video, subtitles and
questions on every machine. `mmrag.evals.long_video_gen` renders the plan into a video and subtitles,
cached under `runs/long-video/data/<key>/`.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mmrag.types import MMRAGError

GEN_VERSION = 3
"""Bumped whenever the generated content changes, so stale caches are not reused."""

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "teal": (0, 128, 128),
    "brown": (165, 42, 42),
}
"""easy-VQA's eight colours, with the RGB values its images use."""
SHAPES = ("circle", "rectangle", "triangle")
FAKE_SHAPES = ("star", "heart")
"""Shape-question distractors that never appear: easy-VQA has only three shapes."""

TOPICS = tuple(
    """lighthouse bakery volcano harbour library observatory windmill greenhouse monastery brewery
    castle museum aquarium sawmill vineyard orchard glacier canyon waterfall island bridge tunnel
    airport market stadium theatre cathedral lagoon desert jungle meadow quarry factory shipyard
    pharmacy bookshop school hospital circus zoo ranch barn cottage palace fortress dam reservoir
    marsh beach cliff cave laboratory workshop garage bank hotel prison courthouse chapel mosque
    temple pagoda pyramid igloo tent cabin houseboat submarine spaceship rocket balloon airship
    train tram ferry yacht canoe tractor bulldozer crane helicopter embassy consulate parliament
    gallery cinema arcade bowling alley casino nightclub bistro diner canteen pizzeria creamery
    dairy fishery hatchery kennel stable aviary apiary nursery vicarage rectory lodge chalet villa
    mansion bungalow farmhouse treehouse bunker silo pier jetty marina wharf dock canal aqueduct
    viaduct lock causeway boulevard plaza arena velodrome racetrack gymnasium sauna spa laundromat
    bakehouse smithy tannery pottery mint armoury foundry refinery distillery""".split()
)

DOG_NAMES = (
    "Biscuit Pepper Maple Rocket Noodle Ziggy Pickle Juniper Comet Tofu Marble Pumpkin Bingo "
    "Clover Olive Mango Pretzel Sprout Domino Whisky"
).split()
NUMBERS = "two three four five six seven eight nine ten eleven twelve".split()
CITIES = (
    "Lisbon Oslo Cairo Lima Dublin Nairobi Quito Hanoi Porto Krakow Tunis Seville Bergen Osaka Perth".split()
)
FOODS = (
    "pancakes noodles dumplings porridge tacos sushi curry omelettes pretzels falafel risotto oatmeal".split()
)
INSTRUMENTS = "violin trumpet banjo cello harp flute accordion drums tuba ukulele piano oboe clarinet".split()
SHAPE_NAMES = "Bobo Kiki Lulu Momo Nana Pipo Rara Susu Titi Zuzu".split()

# (pool, what is said, question): {t} is the topic, {a} the answer.
FACTS: dict[str, tuple[list[str], str, str]] = {
    "dog": (DOG_NAMES, "The {t} has a dog called {a}.", "What is the name of the dog at the {t}?"),
    "number": (NUMBERS, "The {t} has {a} windows.", "How many windows does the {t} have?"),
    "city": (CITIES, "The {t} was built in {a}.", "In which city was the {t} built?"),
    "food": (FOODS, "People at the {t} like to eat {a}.", "What do people at the {t} like to eat?"),
    "music": (
        INSTRUMENTS,
        "The owner of the {t} plays the {a}.",
        "Which instrument does the owner of the {t} play?",
    ),
}
INTROS = (
    "Now a few words about the {t}.",
    "This part is about the {t}.",
    "Let us visit the {t}.",
    "Here is the story of the {t}.",
    "We have arrived at the {t}.",
)


@dataclass(frozen=True)
class GenConfig:
    """What to generate; every field goes into the cache key."""

    seed: int = 0
    minutes: float = 21.0
    segment_seconds: float = 10.0
    fps: int = 2
    width: int = 320
    height: int = 240
    real_share: float = 0.2
    """Share of the non-shape segments that show a real video excerpt (when the folder exists)."""
    speech: bool = True
    """A spoken track: a quarter of the segments say their intro and fact aloud instead of in the
    subtitles (`speech` questions)."""

    def key(self, real_videos: list[str]) -> str:
        blob = json.dumps([GEN_VERSION, asdict(self), real_videos], sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


@dataclass
class Segment:
    """One stretch of the video and its question."""

    index: int
    t_start: float
    t_end: float
    topic: str
    visual: str
    """`shape`, `card` or `real:<file name>`."""
    cues: list[tuple[float, float, str]] = field(default_factory=list)
    speech: list[tuple[float, str]] = field(default_factory=list)
    """Lines said on the soundtrack: (start in seconds, text); `speech` segments only."""
    colour: str | None = None
    shape: str | None = None


@dataclass
class Question:
    """A 5-choice question whose answer sits in one segment."""

    id: str
    kind: str
    """`subtitles`, `frames`, `both` or `speech`."""
    question: str
    choices: list[str]
    answer_idx: int
    segment: int
    t_start: float
    t_end: float

    @property
    def answer(self) -> str:
        return self.choices[self.answer_idx]


@dataclass
class Benchmark:
    """The generated files and the questions."""

    video: Path
    subtitles: Path
    questions: list[Question]
    segments: list[Segment]
    config: GenConfig
    spoken_subtitles: Path | None = None
    """The subtitles plus the spoken lines as cues (the `subtitles` condition of the speech questions)."""

    @property
    def duration(self) -> float:
        return self.segments[-1].t_end if self.segments else 0.0


def _choices(rng: random.Random, answer: str, pool: list[str] | tuple[str, ...]) -> tuple[list[str], int]:
    others = rng.sample([p for p in pool if p != answer], 4)
    choices = [answer, *others]
    rng.shuffle(choices)
    return choices, choices.index(answer)


def plan(cfg: GenConfig, real_videos: list[str]) -> tuple[list[Segment], list[Question]]:
    """Segments (what is shown and said when) and one question per segment, from the seed alone."""
    rng = random.Random(cfg.seed)
    n = int(cfg.minutes * 60 // cfg.segment_seconds)
    if n > len(TOPICS):
        raise MMRAGError(f"{cfg.minutes} minutes need {n} topics; only {len(TOPICS)} exist")
    topics = rng.sample(TOPICS, n)
    # as many segments of each kind, in a shuffled order
    names = ("subtitles", "frames", "both", "speech") if cfg.speech else ("subtitles", "frames", "both")
    kinds = [names[i % len(names)] for i in range(n)]
    rng.shuffle(kinds)
    segments, questions = [], []
    for i, (topic, kind) in enumerate(zip(topics, kinds, strict=True)):
        t0 = i * cfg.segment_seconds
        t1 = t0 + cfg.segment_seconds
        seg = Segment(i, t0, t1, topic, "shape")
        if kind in ("subtitles", "speech"):
            real = real_videos and rng.random() < cfg.real_share * 3
            seg.visual = (
                f"real:{rng.choice(real_videos)}" if real else ("card" if rng.random() < 0.5 else "shape")
            )
        if seg.visual == "shape":
            seg.colour, seg.shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        intro = rng.choice(INTROS).format(t=topic)
        fact_kind = rng.choice(list(FACTS))
        pool, said, asked = FACTS[fact_kind]
        fact = rng.choice(pool)
        said_text = said.format(t=topic, a=fact)
        qid = f"q{i:03d}"
        if kind in ("subtitles", "speech"):
            choices, idx = _choices(rng, fact, pool)
            q = Question(qid, kind, asked.format(t=topic), choices, idx, i, t0, t1)
        elif kind == "frames":
            assert seg.colour is not None and seg.shape is not None
            if rng.random() < 0.6:
                text = f"What color is the shape shown while the narrator talks about the {topic}?"
                choices, idx = _choices(rng, seg.colour, list(COLOURS))
            else:
                text = f"Which shape is shown while the narrator talks about the {topic}?"
                choices, idx = _choices(rng, seg.shape, [*SHAPES, *FAKE_SHAPES])
            q = Question(qid, kind, text, choices, idx, i, t0, t1)
        else:
            assert seg.colour is not None
            name = rng.choice(SHAPE_NAMES)
            said_text = f"At the {topic}, the shape on screen is called {name}."
            q = _both_question(rng, qid, topic, name, seg.colour, (i, t0, t1))
        if kind == "speech":  # said aloud (from 0.5 s and 4.5 s), never written
            seg.speech = [(t0 + 0.5, intro), (t0 + 4.5, said_text)]
        else:
            seg.cues = [(t0 + 0.5, t0 + 4.5, intro), (t0 + 5.0, t0 + 9.5, said_text)]
        segments.append(seg)
        questions.append(q)
    return segments, questions


def _both_question(
    rng: random.Random, qid: str, topic: str, name: str, colour: str, where: tuple[int, float, float]
) -> Question:
    """Name (said) and colour (shown): two choices share the name, two the colour, one both."""
    names = rng.sample([n for n in SHAPE_NAMES if n != name], 2)
    colours = rng.sample([c for c in COLOURS if c != colour], 2)
    pairs = [(name, colour), (name, colours[0]), (name, colours[1]), (names[0], colour), (names[1], colour)]
    # colour first: the bridge names colours as the first word of a reply, as in easy-VQA's answers
    choices = [f"{c}, called {n}" for n, c in pairs]
    rng.shuffle(choices)
    text = f"In the part about the {topic}, what is the shape on screen called, and what color is it?"
    return Question(qid, "both", text, choices, choices.index(f"{colour}, called {name}"), *where)


def pick_questions(questions: list[Question], n: int, seed: int = 0) -> list[Question]:
    """`n` questions (0: all), as many of each kind as possible, drawn with the seed, in video order."""
    if n <= 0 or n >= len(questions):
        return list(questions)
    rng = random.Random(seed)
    by_kind: dict[str, list[Question]] = {}
    for q in questions:
        by_kind.setdefault(q.kind, []).append(q)
    for qs in by_kind.values():
        rng.shuffle(qs)
    picked: list[Question] = []
    while len(picked) < n:
        for kind in sorted(by_kind):
            if by_kind[kind] and len(picked) < n:
                picked.append(by_kind[kind].pop())
    return sorted(picked, key=lambda q: q.segment)
