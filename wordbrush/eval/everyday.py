"""The everyday prompts of the emoji natural-prompt benchmark: what a person would type into an image generator to
get one emoji of the training set ("a cup of hot coffee" for hot beverage), each with the concept it means.

Written by hand, not from the dataset's label / tags / category (nor from any template built on them): sentence
forms and words people use, often not the label's words. Every concept is a base emoji of the `emoji` dataset's
train split (data/emoji.py's split_of: the split is a hash of the code point, so it holds for any build); the
benchmark asks whether the model can be reached from ordinary language, not whether it generalises to unseen
concepts. `label` is the dataset's label of the concept, kept only so that a reader (and a test against the built
manifest) can see that each code point is the emoji meant.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EverydayPrompt:
    prompt: str  # what a person would type
    concept: str  # the base emoji's code point, as in the manifest's `concept` column
    label: str  # the dataset's label of that concept (for reading and checking; never shown to the model)
    group: str  # a coarse topic, to spread the list and to read the per-prompt table by


def _p(group: str, rows: tuple[tuple[str, str, str], ...]) -> tuple[EverydayPrompt, ...]:
    return tuple(EverydayPrompt(prompt, concept, label, group) for prompt, concept, label in rows)


EVERYDAY_PROMPTS: tuple[EverydayPrompt, ...] = (
    *_p("food", (
        ("a cup of hot coffee", "2615", "hot beverage"),
        ("a slice of pizza", "1F355", "pizza"),
        ("a cheeseburger", "1F354", "hamburger"),
        ("a carton of fries from a fast food place", "1F35F", "french fries"),
        ("a shiny red apple", "1F34E", "red apple"),
        ("a ripe yellow banana", "1F34C", "banana"),
        ("a juicy slice of watermelon", "1F349", "watermelon"),
        ("a fresh strawberry", "1F353", "strawberry"),
        ("a bunch of purple grapes", "1F347", "grapes"),
        ("a soft serve cone from the ice cream truck", "1F366", "soft ice cream"),
        ("a donut with pink frosting", "1F369", "doughnut"),
        ("a birthday cake with candles on top", "1F382", "birthday cake"),
        ("a frosty mug of beer", "1F37A", "beer mug"),
        ("a glass of red wine", "1F377", "wine glass"),
        ("a piece of salmon sushi", "1F363", "sushi"),
        ("a crunchy taco with lettuce and cheese", "1F32E", "taco"),
        ("a buttery croissant for breakfast", "1F950", "croissant"),
        ("a chocolate chip cookie", "1F36A", "cookie"),
        ("a stack of pancakes with syrup", "1F95E", "pancakes"),
        ("a cupcake with sprinkles", "1F9C1", "cupcake"),
    )),
    *_p("animals", (
        ("a cute puppy", "1F436", "dog face"),
        ("a kitty cat's face", "1F431", "cat face"),
        ("a red fox", "1F98A", "fox"),
        ("a koala from Australia", "1F428", "koala"),
        ("an orange tiger with black stripes", "1F42F", "tiger face"),
        ("a big grey elephant with a long trunk", "1F418", "elephant"),
        ("a penguin standing on the ice", "1F427", "penguin"),
        ("a sea turtle", "1F422", "turtle"),
        ("a whale spraying water from its blowhole", "1F433", "spouting whale"),
        ("a ladybug with black spots", "1F41E", "lady beetle"),
        ("a magical unicorn", "1F984", "unicorn"),
        ("a green frog", "1F438", "frog"),
        ("a fluffy little chick", "1F424", "baby chick"),
        ("a bunny rabbit", "1F407", "rabbit"),
        ("a shark with sharp teeth", "1F988", "shark"),
        ("a slow garden snail", "1F40C", "snail"),
    )),
    *_p("faces", (
        ("laughing so hard I'm crying", "1F602", "face with tears of joy"),
        ("a smiley face with hearts for eyes", "1F60D", "smiling face with heart-eyes"),
        ("a cool guy wearing shades", "1F60E", "smiling face with sunglasses"),
        ("sobbing my eyes out", "1F62D", "loudly crying face"),
        ("a grumpy angry face", "1F620", "angry face"),
        ("someone rolling their eyes", "1F644", "face with rolling eyes"),
        ("so sleepy I can't stop yawning", "1F971", "yawning face"),
        ("screaming in terror like in a horror movie", "1F631", "face screaming in fear"),
        ("celebrating with a party hat and a noisemaker", "1F973", "partying face"),
        ("mind blown", "1F92F", "exploding head"),
        ("blowing someone a kiss", "1F618", "face blowing a kiss"),
        ("a creepy circus clown", "1F921", "clown face"),
        ("a human skull", "1F480", "skull"),
        ("a smiling swirl of poop", "1F4A9", "pile of poo"),
        ("a robot head", "1F916", "robot"),
        ("a little green man from outer space", "1F47D", "alien"),
    )),
    *_p("hearts", (
        ("I love you, a big red heart", "2764", "red heart"),
        ("a heart cracked in two", "1F494", "broken heart"),
        ("a purple heart", "1F49C", "purple heart"),
        ("a glittering pink heart", "1F496", "sparkling heart"),
        ("a blue heart", "1F499", "blue heart"),
    )),
    *_p("plants", (
        ("a tall yellow sunflower", "1F33B", "sunflower"),
        ("pink cherry blossoms in spring", "1F338", "cherry blossom"),
        ("a palm tree on a tropical island", "1F334", "palm tree"),
        ("a red toadstool with white spots", "1F344", "mushroom"),
        ("a lucky four-leaf clover", "1F340", "four leaf clover"),
        ("a red leaf in autumn, like on the Canadian flag", "1F341", "maple leaf"),
        ("a pink tulip", "1F337", "tulip"),
        ("a pine tree in the forest", "1F332", "evergreen tree"),
    )),
    *_p("weather", (
        ("the sun shining brightly", "2600", "sun"),
        ("a rainbow after the rain", "1F308", "rainbow"),
        ("a snowman with a carrot nose", "26C4", "snowman without snow"),
        ("a lightning bolt", "26A1", "high voltage"),
        ("a snowflake", "2744", "snowflake"),
        ("the moon at night, a thin crescent", "1F319", "crescent moon"),
        ("a fluffy white cloud", "2601", "cloud"),
        ("an umbrella in the pouring rain", "2614", "umbrella with rain drops"),
        ("a tornado", "1F32A", "tornado"),
        ("a big ocean wave", "1F30A", "water wave"),
        ("a flame burning hot", "1F525", "fire"),
    )),
    *_p("travel", (
        ("a red car", "1F697", "automobile"),
        ("a formula one race car", "1F3CE", "racing car"),
        ("a city bus", "1F68C", "bus"),
        ("an ambulance with its lights on", "1F691", "ambulance"),
        ("a passenger jet flying", "2708", "airplane"),
        ("a rocket blasting off into space", "1F680", "rocket"),
        ("a bike", "1F6B2", "bicycle"),
        ("an old steam train", "1F682", "locomotive"),
        ("a cruise ship at sea", "1F6A2", "ship"),
        ("a little house with a garden", "1F3E0", "house"),
        ("a fairytale castle", "1F3F0", "castle"),
        ("the Statue of Liberty in New York", "1F5FD", "Statue of Liberty"),
        ("a volcano erupting lava", "1F30B", "volcano"),
        ("a ferris wheel at the fair", "1F3A1", "ferris wheel"),
    )),
    *_p("objects", (
        ("a smartphone", "1F4F1", "mobile phone"),
        ("a laptop", "1F4BB", "laptop"),
        ("a light bulb, I have an idea", "1F4A1", "light bulb"),
        ("a present wrapped with a ribbon", "1F381", "wrapped gift"),
        ("a red balloon on a string", "1F388", "balloon"),
        ("a pile of books", "1F4DA", "books"),
        ("an old-fashioned alarm clock", "23F0", "alarm clock"),
        ("an acoustic guitar", "1F3B8", "guitar"),
        ("a king's golden crown", "1F451", "crown"),
        ("a sparkling diamond", "1F48E", "gem stone"),
        ("a sneaker", "1F45F", "running shoe"),
        ("a sack full of cash", "1F4B0", "money bag"),
        ("a pair of scissors", "2702", "scissors"),
        ("a hammer", "1F528", "hammer"),
        ("an old camera", "1F4F7", "camera"),
        ("a cartoon bomb with a lit fuse", "1F4A3", "bomb"),
        ("a padlock", "1F512", "locked"),
        ("a ship's anchor", "2693", "anchor"),
    )),
    *_p("activities", (
        ("a soccer ball", "26BD", "soccer ball"),
        ("an orange basketball", "1F3C0", "basketball"),
        ("a tennis ball", "1F3BE", "tennis"),
        ("a gold trophy cup for the winner", "1F3C6", "trophy"),
        ("a game controller", "1F3AE", "video game"),
        ("a die for a board game", "1F3B2", "game die"),
        ("a carved halloween pumpkin", "1F383", "jack-o-lantern"),
        ("a decorated christmas tree", "1F384", "Christmas tree"),
        ("a party popper shooting confetti", "1F389", "party popper"),
        ("an arrow in the middle of a target", "1F3AF", "bullseye"),
        ("a teddy bear", "1F9F8", "teddy bear"),
        ("a jigsaw puzzle piece", "1F9E9", "puzzle piece"),
    )),
    *_p("flags", (
        ("the French flag", "1F1EB-1F1F7", "flag: France"),
        ("the American flag, stars and stripes", "1F1FA-1F1F8", "flag: United States"),
        ("the flag of Japan", "1F1EF-1F1F5", "flag: Japan"),
        ("the Union Jack", "1F1EC-1F1E7", "flag: United Kingdom"),
        ("the Canadian flag", "1F1E8-1F1E6", "flag: Canada"),
        ("the Italian flag", "1F1EE-1F1F9", "flag: Italy"),
        ("Brazil's flag", "1F1E7-1F1F7", "flag: Brazil"),
        ("the flag of Mexico", "1F1F2-1F1FD", "flag: Mexico"),
        ("a pirate flag with a skull and crossbones", "1F3F4-200D-2620", "pirate flag"),
        ("a pride flag", "1F3F3-200D-1F308", "rainbow flag"),
    )),
    *_p("symbols and hands", (
        ("a gold star", "2B50", "star"),
        ("a big red X", "274C", "cross mark"),
        ("a green check mark", "2705", "check mark button"),
        ("a peace sign with two fingers", "270C", "victory hand"),
        ("a hand waving hello", "1F44B", "waving hand"),
        ("a round of applause", "1F44F", "clapping hands"),
    )),
    *_p("people", (
        ("Santa Claus", "1F385", "Santa Claus"),
        ("a newborn baby", "1F476", "baby"),
    )),
)


def spread(prompts: tuple[EverydayPrompt, ...], n: int) -> tuple[EverydayPrompt, ...]:
    """n prompts evenly spaced through the list (every group represented as far as n allows); all of them when
    n <= 0 or n >= len(prompts). For quick runs (`--max-items`)."""
    if n <= 0 or n >= len(prompts):
        return prompts
    if n == 1:
        return prompts[:1]
    return tuple(prompts[round(i * (len(prompts) - 1) / (n - 1))] for i in range(n))
