#!/usr/bin/env python3
"""Write the synthetic sample data: one CSV of 500 labeled texts per task (rules in README.md),
and label_errors.csv, the answer key of the label errors planted in them.

Standard library only and seeded, so every run writes the same bytes:

    python3 data/generate_samples.py [--out DIR]    # default: data/samples next to this file

Each text is a template whose {slots} are filled at random, then roughened (slang, typos,
abbreviations). Every task mixes clear positives, twin rows (one template for both labels,
the label set by who it happened to, whether it happened, a negation or a number), borderline
rows of both labels, hard negatives that a keyword rule gets wrong, and ordinary negatives,
so a bag-of-words classifier cannot read the label off the template. Then a few rows of each
task get the wrong gold label on purpose.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import random
import re
import string
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROWS = 500
# The seed of every task's draws. The first of those tried (medassets-samples-1 to -40) whose files
# meet test_sample_data's bands on the pipeline's split; the others' figures spread around them.
SEED = "medassets-samples-1"
AMBIGUOUS_SHARE = 0.07  # of each label: borderline rows, labeled by the README's rule
TWIN_SHARE = 0.40  # of each label: rows of templates that serve both labels (a task may set its own)
HARD_SHARE = 0.60  # of the other negatives: near-misses that share the positives' vocabulary
ERRORS_PER_LABEL = 8  # planted label errors in each direction, per task
MAX_TRIES = 200_000

SLOT = re.compile(r"\{(\w+)\}")


def load_tasks():
    """medassets/tasks.py, loaded by path so that the package's dependencies are not needed."""
    spec = importlib.util.spec_from_file_location("_medassets_tasks", HERE.parent / "medassets" / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses looks the module up while building TaskSpec
    spec.loader.exec_module(module)
    return module.TASKS


def num(low, high):
    return lambda rng: str(rng.randint(low, high))


def pair(items, fmt):
    """A slot filled with two different items, e.g. "from Zoloft to Lexapro"."""
    return lambda rng: fmt.format(*rng.sample(items, 2))


def url(rng):
    return "https://t.co/" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(10))


def fill(rng, template, slots):
    """Replace every {slot} (slot values may hold further slots) with a random value."""
    def pick(match):
        value = slots[match.group(1)]
        return value(rng) if callable(value) else rng.choice(value)

    while SLOT.search(template):
        template = SLOT.sub(pick, template)
    return template


# --- social media ---------------------------------------------------------------------------

TWEET_SLOTS = {
    "when": ["yesterday", "last week", "this morning", "last night", "on monday", "two weeks ago",
             "a month ago", "over the weekend", "3 days ago", "today"],
    "today": ["today", "this morning", "tonight", "rn", "again today"],
    "day": ["monday", "tuesday", "wednesday", "thursday", "friday", "tmrw", "next week"],
    "sad": ["😭", "🙏", "😩", "🥲", "😔", "🥺", "💔", ""],
    "happy": ["💗", "✨", "💪", "🙌", "🎉", "❤️", "🥳", "😊", ""],
    "meh": ["🙃", "😤", "🤷‍♀️", "😅", "💀", "lol", "smh", ""],
    "other": ["my mom", "my aunt", "my best friend", "my sister", "my coworker", "my neighbor",
              "my grandma", "my cousin", "my friend's mom", "my MIL", "my bff", "my boss"],
    "place": ["Denver", "Atlanta", "Ohio", "Texas", "the city", "Phoenix", "Boston", "Florida",
              "Chicago", "the lake", "my hometown"],
    "food": ["tacos", "pizza", "leftover pasta", "cereal", "pho", "a sad salad", "nachos",
             "ramen", "breakfast burritos", "grilled cheese"],
    "item": ["sandwich", "sock", "AirPods case", "homework", "toast", "charger", "slipper"],
    "pet": ["dog", "cat", "puppy", "kitten", "bunny"],
    "show": ["that baking show", "the new crime doc", "a 90s sitcom", "the dragon show",
             "a k-drama", "the reality show everyone hates"],
    "team": ["the Bears", "my fantasy team", "the home team", "our rec league team", "the Falcons"],
    "chore": ["laundry", "the dishes", "my taxes", "meal prep", "the garage"],
    "month": ["october", "march", "december", "june", "september", "february"],
    "n": num(2, 9),
    "url": url,
}

# Everyday tweets with nothing to do with health: the plain negatives of every social media task.
GENERIC_TWEETS = [
    "can't believe it's already {month}, where did the year go {meh}",
    "{food} for dinner again, no regrets",
    "my {pet} just stole my {item} off the counter {meh}",
    "traffic on the way to work {today} is a nightmare {meh}",
    "need coffee. lots of it ☕",
    "finally finished {show}. the ending?? {meh}",
    "who else is up at 3am for no reason",
    "leg day {when} and I can barely walk down the stairs {meh}",
    "my kid asked me why the sky is blue and I panicked",
    "rain all week in {place}, send sun pls",
    "the group chat is absolute chaos {today} {meh}",
    "dentist appt {day}, pray for me 😬",
    "just booked a trip to {place}!! ✈️",
    "I will never understand people who don't like {food}",
    "happy birthday to {other}, love you {happy}",
    "spent {n} hours on {chore} and I'm still not done",
    "nothing humbles you like a toddler at the grocery store",
    "why does my phone die at 20% every single time",
    "first day at the new job {when}, everyone seems nice so far {happy}",
    "if one more person asks me about my five year plan {meh}",
    "{team} really found a new way to lose {today} {meh}",
    "procrastinating on {chore} by watching {show}",
    "my {pet} has decided 5am is breakfast time now {meh}",
    "road trip to {place} {day}, send playlist recs",
    "made {food} from scratch and honestly? chef's kiss {happy}",
    "the wifi went out and my whole family had to talk to each other {meh}",
    "does anyone actually like the new update on this app",
    "saw the cutest {pet} at the park {today} {happy}",
    "{n} more days till vacation, I can taste it",
    "landlord says the heat will be fixed {day}. sure jan",
    "my neighbor is mowing the lawn at 7am on a saturday {meh}",
    "started {show} {when} and I'm already {n} episodes in",
    "some days you just need {food} and a nap",
    "moving to {place} next month, any tips?",
    "parallel parked on the first try, today is my day {happy}",
]

TWEET_OPENERS = ["ugh.", "update:", "honestly", "ok so", "not sure why I'm posting this but", "well.",
                 "real talk:", "so yeah"]
TWEET_CLOSERS = ["anyway.", "that's all.", "...", "idk.", "one day at a time", "thoughts?",
                 "just needed to say it", "ok bye", "#life"]
TWEET_SLANG = [("because", "bc"), ("tomorrow", "tmrw"), ("you", "u"), ("really", "rly"),
               ("though", "tho"), ("doctor", "dr"), ("appointment", "appt"), ("going to", "gonna"),
               ("please", "pls"), ("people", "ppl"), ("with", "w/"), ("to be honest", "tbh")]


def typo(rng, text):
    """Swap two neighbouring letters in one longer word."""
    words = text.split(" ")
    long_words = [i for i, w in enumerate(words) if len(w) > 5 and w.isalpha()]
    if long_words:
        i = rng.choice(long_words)
        j = rng.randrange(1, len(words[i]) - 2)
        w = words[i]
        words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words)


def roughen_tweet(rng, text, tags):
    if "https://" not in text:  # news and ads get no chatty opener or closer
        if rng.random() < 0.2:
            text = rng.choice(TWEET_OPENERS) + " " + text
        if rng.random() < 0.2:
            text += " " + rng.choice(TWEET_CLOSERS)
    for word, short in TWEET_SLANG:
        if rng.random() < 0.35:
            text = re.sub(rf"\b{word}\b", short, text)
    if rng.random() < 0.08:
        text = typo(rng, text)
    if rng.random() < 0.3:
        text = text.lower()
    if rng.random() < 0.12:
        text = "@user " + text
    if tags and rng.random() < 0.25:
        text += " " + rng.choice(tags)
    return re.sub(r"\s+", " ", text).strip()


DRUGS = ["sertraline", "Zoloft", "Lexapro", "metformin", "lisinopril", "Adderall", "Wellbutrin",
         "prednisone", "gabapentin", "levothyroxine", "Vyvanse", "lamictal", "Prozac", "insulin",
         "propranolol", "Effexor", "Abilify", "seroquel", "Concerta", "lithium", "buspirone",
         "Celexa", "Cymbalta", "Synthroid", "Ozempic", "trazodone", "hydroxyzine"]
ANTIDEPRESSANTS = ["Zoloft", "Lexapro", "Prozac", "Wellbutrin", "Effexor", "Celexa", "Cymbalta",
                   "Paxil", "Trintellix", "sertraline"]

BREAST_CANCER = {
    "prefix": "bc",
    "slots": {
        "bc_tail": ["one day at a time", "telling my kids tonight", "can't stop shaking", "thank you all for the prayers", "{sad}", "🎀"],
        "stage": ["stage 1", "stage 2", "stage 2A", "stage 3", "stage 1 IDC", "stage 2 IDC",
                  "stage 3 ILC", "stage 0 DCIS", "triple negative", "HER2+", "ER+/PR+"],
        "surgery": ["double mastectomy", "mastectomy", "lumpectomy with node dissection",
                    "reconstruction surgery", "DIEP flap surgery"],
        "treatment": ["chemo", "radiation", "AC-T", "Herceptin", "taxol", "infusion"],
        "celeb": ["a famous actress", "that singer from the 90s", "a former news anchor",
                  "a reality TV star", "an Olympic swimmer"],
        "finding": ["a new gene linked to recurrence", "exercise lowers recurrence risk",
                    "AI spots tumors earlier on mammograms", "a promising new antibody drug"],
        "age": num(29, 68),
    },
    "tags": ["#BreastCancer", "#pinkribbon", "#cancersucks", "#survivor", "🎀", "#BCSM",
             "#fightlikeagirl"],
    "positive": [
        "I was diagnosed with {stage} breast cancer {when}. still processing all of it {sad}",
        "{treatment} round {n} done {happy} a few more to go. this breast cancer thing is no joke",
        "my oncologist says the tumor shrank by half after {n} rounds of {treatment}!! {happy}",
        "shaved my head before chemo could take my hair. bald and fighting {stage} breast cancer {happy}",
        "had my {surgery} {when}, drains come out {day}. recovery is slow but I'm here",
        "{n} years ago today I heard the words 'you have breast cancer'. still here {happy}",
        "anyone else on tamoxifen after {stage} breast cancer dealing with hot flashes?? I can't sleep",
        "clear margins after my lumpectomy!! thank you all for the prayers {happy}",
        "rang the bell {today}, last radiation session for my {stage} breast cancer {happy}",
        "being {age} with breast cancer means telling every nurse that yes, I'm the patient {meh}",
        "my port is sore and chemo brain is real. forgot my own zip code at the pharmacy {meh}",
        "the hardest part of my breast cancer diagnosis was telling my kids {sad}",
        "oncologist appt {day}, scans to see if my {stage} cancer spread. so nervous {sad}",
        "reconstruction surgery #{n} {when}. my body has been through a lot since the mastectomy",
        "the bone pain from the neulasta shot after chemo is something else {sad}",
        "breast cancer survivor here, {n} years NED and I still get scanxiety every 6 months",
        "my surgeon called: the biopsy is malignant. {stage}. I have breast cancer. I'm {age} {sad}",
        "lost my eyebrows during {treatment} and drew them on crooked for my oncology appt {meh}",
        "{n} rounds of {treatment} left for my breast cancer and then surgery. tired but hopeful",
        "{n} weeks post-op from my {surgery} and I finally lifted my arm over my head {happy}",
        "the day I was diagnosed with breast cancer I went home and cleaned the whole kitchen. coping I guess",
        "chemo nausea is winning today. breast cancer 1, me 0 {sad}",
        "my breast cancer is back. {stage}, second time around. here we go again {sad}",
        "finished {treatment} for my breast cancer {when}!!! {happy}",
    ],
    "positive_ambiguous": [
        "{n} years NED today 💗🎗️ grateful for every boring day",
        "lost my hair, my eyebrows and my left breast this year but not my sense of humor",
        "tamoxifen day {n}. the joint pain is no joke {sad}",
        "the cancer center parking guy knows me by name now. round {n} {day} 💗",
    ],
    "hard": [
        "october is breast cancer awareness month 🎀 schedule your mammogram!",
        "{other} was just diagnosed with breast cancer. please keep her in your prayers {sad}",
        "walked {n}k for the breast cancer fundraiser {when} in honor of {other} 💗",
        "new study: {finding} in breast cancer patients {url}",
        "{celeb} opens up about her breast cancer diagnosis in new interview {url}",
        "sat with {other} during her chemo {when}. breast cancer is so cruel {sad}",
        "buy a pink ribbon pin, all proceeds go to breast cancer research 🎀 {url}",
        "men can get breast cancer too. check yourselves fellas {url}",
        "{other} finished her last round of chemo! so proud of her {happy}",
        "running the {place} 5k for breast cancer research, donate here {url}",
        "researchers report {finding} for HER2+ breast cancer {url}",
        "my grandma beat breast cancer twice and still makes the best pie in {place}",
        "wearing pink {today} for everyone fighting breast cancer 💗",
        "the whole team wore pink cleats for breast cancer awareness {when}",
        "{other}'s mastectomy went well, she's resting now. thank you for the prayers {happy}",
        "lost {other} to breast cancer {n} years ago today. miss her every day {sad}",
        "breast cancer screening should start at 40, the new guidelines say {url}",
        "shaving my head in solidarity with {other} who starts chemo {day} 💗",
        "{celeb} says she is cancer-free after breast cancer treatment {url}",
        "donated to the breast cancer foundation in memory of {other} 🎀",
        "oncology nurse here, my breast cancer patients are the strongest people I know {happy}",
        "{other} is getting her mastectomy {day}, what do I bring her? {sad}",
        "free mammograms at the {place} community center this saturday, spread the word {url}",
    ],
    "easy": GENERIC_TWEETS + [
        "pink is my favorite color and I will not apologize 💗",
        "my mammogram {when} took 5 minutes and everything came back normal. go get yours",
        "the new cancer center downtown finally opened and now traffic on my street is a mess {meh}",
        "zodiac twitter says cancer season is here, brace yourselves",
    ],
    # Twin templates: one template for both labels. Each {twin slot} holds (negative values,
    # positive values); a positive row takes the positive value of every twin slot, a negative one
    # the negative value of at least one, so both labels share the template's vocabulary.
    "twins": {
        "bc_me": (["my mom was", "my aunt was", "{other} was", "my sister just got", "my best friend was"],
                  ["I was", "I just got", "I finally got", "I was officially", "I got"]),
        "bc_whose": (["my mom's", "my aunt's", "{other}'s", "my sister's", "my neighbor's"],
                     ["my", "my", "my own", "my second"]),
        "bc_whom": (["my mom", "{other}", "my aunt", "my sister"], ["me", "this girl", "yours truly", "me, finally"]),
        "bc_result": (["benign", "clear, just a cyst", "fine, a fibroadenoma", "negative for cancer"],
                      ["malignant", "positive for cancer", "as invasive ductal carcinoma", "as {stage} cancer"]),
        "bc_sure": (["terrified that", "googled my symptoms and now I'm convinced", "what if",
                     "the doctor doesn't think", "waiting to find out if"],
                    ["the doctor confirmed", "it's official:", "the biopsy confirmed", "still can't believe",
                     "it's been a year since I found out"]),
        "bc_why": (["asking for my mom", "{other} starts {day}", "asking for a friend", "my sister is so worried"],
                   ["mine starts {day}", "I start {day}", "starting mine {day}", "asking for me, I start soon"]),
    },
    "twin": [
        "{bc_me} diagnosed with {stage} breast cancer {when} {sad}",
        "{bc_whose} biopsy came back {bc_result} {when}",
        "{bc_sure} I have breast cancer. {bc_tail}",
        "{bc_whose} last round of {treatment} is {day}!! {happy}",
        "{bc_whose} oncologist says the tumor shrank after {n} rounds of {treatment} {happy}",
        "{bc_whose} mastectomy is {day}, so scared {sad}",
        "{n} years cancer free today for {bc_whom} {happy}",
        "just got home from {bc_whose} {surgery}. {bc_tail}",
        "tamoxifen day {n} for {bc_whom}. the hot flashes are no joke",
        "{bc_me} told it's {stage} {when}. {bc_tail}",
        "does {treatment} make you lose your hair right away? {bc_why}",
        "sitting in the infusion chair for {bc_whose} round {n}. {bc_tail}",
    ],
    "negative_ambiguous": [
        "got called back after my mammogram. biopsy {day}, trying not to panic {sad}",
        "BRCA2+ and scheduled a preventive mastectomy. no cancer, and I'd like to keep it that way",
        "found a lump {when}, dr thinks it's a cyst but ordered an ultrasound {sad}",
        "biopsy came back benign!!! just a fibroadenoma. I can breathe again {happy}",
        "this breast cancer storyline on {show} is hitting way too close to home",
    ],
}

MEDICATION_REGIMEN = {
    "prefix": "mrc",
    "twin_share": 0.05,
    "slots": {
        "mr_tail": ["we'll see {meh}", "fingers crossed 🤞", "ok then", "not sure how I feel", "{sad}", "{happy}", ""],
        "mr_feel": ["better already", "weird", "nothing yet", "so tired", "relieved"],
        "drug": DRUGS,
        "switch": pair(ANTIDEPRESSANTS, "{} to {}"),
        "dose": ["25mg", "50mg", "100mg", "10 mg", "20mg", "150mg", "0.5mg", "75 mcg", "300mg"],
        "doses": pair(["25mg", "50mg", "100mg", "150mg", "200mg"], "{} to {}"),
        "doc": ["my dr", "my psych", "my endo", "my pcp", "my neuro", "the NP"],
        "brand": ["Xylora", "Brightiva", "Calmexa", "Nuvendi"],
    },
    "tags": ["#meds", "#mentalhealth", "#spoonie", "#chronicillness", "💊", "#T1D"],
    "positive": [
        "stopped taking {drug} {when} and the brain zaps are real {sad}",
        "{doc} switched me from {switch} {when}, hoping this one works better",
        "doubled my {drug} dose {today}, fingers crossed 🤞",
        "started {drug} {when}. day {n} and already nauseous {sad}",
        "{doc} lowered my {drug} to {dose} because of the side effects",
        "quit {drug} cold turkey bc I couldn't afford the refill. do not recommend {meh}",
        "going from {doses} of {drug} starting tomorrow",
        "weaning off {drug}, down to {dose} now {happy}",
        "new med day! switched from {switch} and praying {happy}",
        "I've been skipping my night dose of {drug} on purpose, it makes me way too groggy",
        "{doc} upped my {drug} to {dose}. we'll see {meh}",
        "officially off {drug} after {n} years {happy}",
        "first week on {drug} and I already feel less foggy {happy}",
        "I'm taking half my {drug} now bc the full dose made my heart race",
    ],
    "positive_ambiguous": [
        "{doc} said we'll bump up the {drug} next month if nothing changes",
        "taking my {drug} every other day now to make the bottle last till payday {meh}",
        "told {doc} I'm done with {drug}. she's not thrilled {meh}",
    ],
    "hard": [
        "picked up my {drug} refill {when}, same dose as always",
        "still taking {drug} {dose}, still working, no complaints",
        "has anyone switched from {switch}? how was it",
        "should I ask {doc} to lower my {drug} dose? kinda groggy lately",
        "ask your doctor if {brand} is right for you. side effects may include nausea {url}",
        "FDA warns patients not to stop taking {drug} abruptly {url}",
        "{other} stopped taking her {drug} and now she won't listen to anyone {meh}",
        "new study: switching antidepressants early may improve outcomes {url}",
        "{n} years on {drug} and starting it was the best decision I ever made {happy}",
        "insurance finally approved my {drug} refill, no changes, thank god",
        "the vet started my {pet} on thyroid meds {when}, she hates the pill pockets",
        "{other} just started {drug} and is so much happier {happy}",
        "drugmaker raises the price of {drug} by {n}0% {url}",
        "did anyone's doctor change their dose after the shortage? asking for a friend",
        "reminder: never change your dose without talking to your doctor {url}",
        "still on the same {drug} dose {doc} started me on {n} years ago",
        "how long did it take you guys to adjust after starting {drug}?",
        "pharmacist says I can't refill {drug} early, same as always {meh}",
        "study: stopping {drug} early raises relapse risk {url}",
        "does {drug} make anyone else sleepy? been on it {n} months, same dose",
    ],
    "easy": GENERIC_TWEETS + [
        "pill organizer for the week is done ✅ adulting",
        "the pharmacy line is SO long {today} {meh}",
        "that {brand} commercial with the dancing is stuck in my head",
        "took my meds, drank my water, went outside. small wins {happy}",
        "{doc} was running an hour behind {when} so I read a whole magazine",
    ],
    "twins": {
        "mr_change": (["refilled my", "didn't change my", "kept me on the same", "won't touch my", "asked about my"],
                      ["upped my", "lowered my", "took me off", "switched me off", "doubled my", "cut my"]),
        "mr_act": (["refilled", "forgot", "almost quit", "thought about quitting", "picked up", "ran out of"],
                   ["stopped", "started", "quit", "weaned off", "came off", "halved"]),
        "mr_who": (["{other}", "my sister", "my mom", "my roommate"], ["I", "I finally", "I just", "I"]),
        "mr_plan": (["should I ask {doc} to", "thinking about asking {doc} to", "I refuse to let {doc}", "not sure if I should",
                     "{doc} says there's no reason to"],
                    ["{doc} and I agreed to", "starting {day} I'm going to", "{doc} told me to", "we decided to",
                     "{doc} wants to"]),
        "mr_dose": (["same dose", "same mg, different color pill", "no change in dose", "same as always"],
                    ["and a higher dose", "at half the dose", "and double the mg", "and a lower dose"]),
    },
    "twin": [
        "{doc} {mr_change} {drug} {when}. {mr_tail}",
        "I {mr_act} {drug} {when}. {mr_tail}",
        "{mr_who} stopped taking {drug} cold turkey {when} {meh}",
        "{mr_plan} lower my {drug} dose {mr_tail}",
        "{mr_plan} raise the {drug} dose {mr_tail}",
        "pharmacy switched my {drug} to the generic, {mr_dose} {meh}",
        "{mr_who} started {drug} {when}. day {n} {mr_tail}",
        "{doc} {mr_change} {drug} and honestly I feel {mr_feel}",
        "{mr_who} switched from {switch} {when}, {mr_tail}",
    ],
    "negative_ambiguous": [
        "forgot my {drug} this morning and I can already feel it {sad}",
        "thinking about asking to come off {drug} at my next appt",
        "pharmacy switched the generic on my {drug}, pills look different but same dose",
        "took my {drug} late {today} bc I slept in {meh}",
    ],
}

ADVERSE_PREGNANCY = {
    "prefix": "apo",
    "twin_share": 0.55,
    "slots": {
        "ap_tail": ["still processing", "I don't know what to say", "one day at a time {sad}", "thank you all for the love", "{sad}", "💙", ""],
        "wk": num(6, 13),
        "late": num(22, 39),
        "pre": num(24, 34),
        "term": num(38, 41),
        "gw": num(12, 30),
        "d": num(0, 6),
        "lb": num(2, 4),
        "big": num(6, 9),
        "oz": num(0, 15),
        "small_oz": num(0, 7),
        "kid": ["son", "daughter", "baby girl", "baby boy", "little one", "rainbow baby"],
        "sex": ["boy", "girl"],
        "fruit": ["lemon", "avocado", "mango", "banana", "cantaloupe", "eggplant"],
        "year": ["last year", "2021", "the pandemic years"],
    },
    "tags": ["#PregnancyLoss", "#NICU", "#preemie", "#TTC", "#babyloss", "#IVF", "#pregnant"],
    "positive": [
        "we lost our baby at {wk} weeks {when}. I don't know how to do this {sad}",
        "had a miscarriage {when}. my body feels so empty {sad}",
        "our {kid} was stillborn at {late} weeks. I held our baby for hours and it wasn't enough",
        "my water broke at {pre} weeks and she came the next day. NICU day {n} 💙",
        "{n} days in the NICU with my preemie, born at {pre} weeks, {lb}lb {oz}oz",
        "ectopic pregnancy, emergency surgery {when}. lost my tube and my baby {sad}",
        "second miscarriage this year. starting to think it's me {sad}",
        "went into preterm labor at {pre} weeks, my {kid} is on CPAP but fighting {happy}",
        "D&C tomorrow after the ultrasound showed no heartbeat at {wk} weeks {sad}",
        "my {kid} is 1 today. after {n} losses I never thought I'd get here {happy}",
        "our twins arrived at {pre} weeks by emergency c-section. NICU life for now",
        "born at {pre}+{d} weighing {lb}lb {oz}oz, my little fighter is finally home from the NICU {happy}",
        "chemical pregnancy again. positive test last week, bleeding today {sad}",
        "I miscarried at {wk} weeks {when} and everyone expects me to just go back to work",
        "delivered my sleeping angel at {late} weeks {when}. stillbirth is real and it happened to me",
        "my preemie was born at {pre} weeks and I'm pumping every 3 hours for the NICU {happy}",
        "my {kid} spent {n} weeks in the NICU after arriving at {pre} weeks. today we celebrate {n} months {happy}",
        "lost our {kid} at {late} weeks, born sleeping {when} {sad}",
        "my hcg keeps dropping and the dr confirmed it's a miscarriage {sad}",
        "NICU discharge day!!! {n} weeks after our {pre} weeker arrived {happy}",
        "had to deliver at {pre} weeks because of preeclampsia. baby is {lb}lb {oz}oz and in the NICU",
        "it's been a year since my ectopic. still think about what could have been {sad}",
        "missed miscarriage found at my {wk} week scan. no heartbeat. we're devastated {sad}",
        "my body went into labor at {pre} weeks and nothing could stop it. my {kid} is in the NICU {sad}",
    ],
    "positive_ambiguous": [
        "my {kid} was born at 36 weeks, perfectly healthy, just tiny {happy}",
        "baby needed 2 days in the NICU for breathing issues after birth. full term but so scary",
        "5lb {small_oz}oz at birth even at full term, they kept saying she was small for dates",
    ],
    "hard": [
        "my sister had a miscarriage {when}, how do I support her? {sad}",
        "october 15 is pregnancy and infant loss awareness day. light a candle tonight 🕯️",
        "{gw} weeks pregnant today and baby is the size of a {fruit}! {happy}",
        "born at {term}+{d}, {big}lb {oz}oz of pure perfection 💕",
        "new report: preterm birth rates rose in {year} {url}",
        "1 in 4 pregnancies ends in miscarriage. we need to talk about it more",
        "{other}'s baby was in the NICU for a week, so glad he's home now {happy}",
        "NICU nurses are angels. I'm one, shift {n} this month and I love my job",
        "study links air pollution to stillbirth risk {url}",
        "gender reveal {when}, it's a {sex}!! {happy}",
        "20 week anatomy scan went perfectly {happy}",
        "{other} lost her baby at {wk} weeks. my heart is broken for her {sad}",
        "donated my old baby clothes to the NICU at the hospital in {place}",
        "watched a documentary about preterm babies and cried the whole time",
        "ran the 5k for the NICU family fund {when} 💙 {url}",
    ],
    "easy": GENERIC_TWEETS + [
        "pregnancy cravings update: pickles on {food}. don't judge",
        "my toddler thinks the baby in my belly is named {food}",
        "baby shower planning is stressing me out more than the actual pregnancy {meh}",
        "nursery is finally painted {happy}",
    ],
    "twins": {
        "ap_weeks": (num(37, 41), num(24, 36)),
        "ap_weight": (["5lb 9oz", "6lb {oz}oz", "7lb {oz}oz", "8lb {oz}oz", "5lb 12oz"],
                      ["4lb {oz}oz", "3lb {oz}oz", "5lb {small_oz}oz", "2lb {oz}oz"]),
        "ap_whose": (["my sister's", "{other}'s", "my best friend's", "my cousin's", "our neighbor's", "my SIL's"],
                     ["our", "my", "our little", "my", "my own", "our second"]),
        "ap_who": (["my sister", "{other}", "my best friend", "my cousin", "our neighbor", "my SIL"],
                   ["I", "we", "I", "I", "my husband and I", "I (not my sister)"]),
        "ap_scan": (["a strong heartbeat", "a healthy heartbeat, measuring right on track", "everything looking perfect",
                     "a heartbeat of 160", "no bleeding and a strong heartbeat", "no sign of the ectopic they worried about"],
                    ["no heartbeat", "no heartbeat anymore", "a baby that had stopped growing", "an empty sac",
                     "a heartbeat last week but none today", "the pregnancy in my tube"]),
    },
    "twin": [
        "{ap_whose} {kid} was born at {ap_weeks}+{d} weeks {when} {happy}",
        "{ap_whose} {kid} arrived {when} weighing {ap_weight}",
        "went in for my {wk} week scan {when} and there was {ap_scan}",
        "{ap_whose} {kid} spent {n} days in the NICU after birth",
        "{ap_who} had a miscarriage {when}. {ap_tail}",
        "{ap_whose} {kid} is home after being born at {ap_weeks} weeks {happy}",
        "{ap_who} lost the baby at {wk} weeks. {ap_tail}",
        "she was born at {ap_weeks}+{d} weeks {when}. {ap_tail}",
        "the ultrasound showed {ap_scan} at {wk} weeks. {ap_tail}",
        "{ap_who} delivered at {ap_weeks} weeks {when}. {ap_tail}",
    ],
    "negative_ambiguous": [
        "spotting at {wk} weeks, waiting for my hcg results. please let this be nothing {sad}",
        "born at 37 weeks on the dot, she was in a hurry {happy}",
        "my OB says I'm high risk for preterm labor this time so I'm on modified bed rest",
        "watching a show with a stillbirth scene and I need a minute",
    ],
}

SYMPTOMS = ["a dry cough", "body aches", "chills", "a pounding headache", "a sore throat",
            "no sense of smell", "zero energy"]

COVID = {
    "prefix": "cov",
    "twin_share": 0.45,
    "slots": {
        "cv_tail": ["staying home anyway", "working from home this week", "hydrating and resting", "keeping my distance", "wearing a mask around the house"],
        "temp": lambda rng: f"{rng.randint(1000, 1032) / 10:.1f}",
        "symptom": SYMPTOMS,
        "symptoms": pair(SYMPTOMS, "{} and {}"),
        "household": ["my husband", "my wife", "my roommate", "my son", "my daughter",
                      "my partner", "my mom (we live together)"],
        "contact": ["my coworker", "a guy on my team", "my boss",
                    "my friend from the gym", "our neighbor"],
        "state": ["Texas", "Ohio", "the county", "Florida", "the state", "New York"],
        "n3": num(120, 9800),
    },
    "tags": ["#COVID19", "#covid", "#StayHome", "#quarantine", "😷", "#coronavirus"],
    "positive": [
        "woke up with a fever of {temp} and can't taste my coffee. getting tested {day} {sad}",
        "tested positive for covid {when}. day {n} and this cough is brutal",
        "{household} tested positive so now we're all quarantining {sad}",
        "lost my sense of smell out of nowhere. covid?? 🤔",
        "day {n} of fever, {symptoms}. still waiting on my test results",
        "got the call, I'm positive. isolating in my bedroom for 10 days {sad}",
        "{household} has a fever and {symptom}, pretty sure I'm next {sad}",
        "two lines on the home test this morning. here we go 😷",
        "sat next to someone at work who tested positive the next day and now I have {symptom}",
        "chest is tight and I can't catch my breath, my doctor says to assume it's covid",
        "{household} came home with a fever and cough, we're all getting swabbed {day}",
        "covid round 2 for me. {symptoms} and a fever of {temp}",
        "my rapid test is positive and {household} is coughing too. great {meh}",
        "can't smell my candles or taste my food, getting a test {day} {sad}",
        "{household} is in bed with a fever of {temp}. we just got back from a wedding {sad}",
        "waiting in the drive-thru testing line with a fever of {temp} and {symptom}",
    ],
    "positive_ambiguous": [
        "tested negative but still no taste or smell and a fever of {temp}. retesting {day}",
        "close contact at work tested positive. no symptoms yet, quarantining just in case",
        "is it allergies or is it covid? {symptoms} all day {meh}",
    ],
    "hard": [
        "got my booster {when}, arm is sore but worth it 💉",
        "{state} reports {n3} new covid cases today {url}",
        "wear a mask in crowded places, it's not that hard",
        "the covid relief bill is stalled again, congress please do your job",
        "{contact} tested positive so they sent them home, the rest of us are fine",
        "covid vaccines for kids are rolling out this week {url}",
        "tested negative before flying to see my parents 🙌 no symptoms at all",
        "my cousin across the country has covid, praying for him {sad}",
        "positive vibes only this week ✨",
        "remember when covid shut everything down and we all baked bread",
        "free covid test kits are back, order them here {url}",
        "side effects from my second dose: tired. that's it",
        "another covid variant in the news, here's what we know {url}",
        "I stayed positive all year and it paid off, got the promotion!! {happy}",
        "mask mandates are back in {state} schools {url}",
        "{contact} finally recovered from covid, back at work {today}",
        "the whole family got flu shots and covid boosters {today} {happy}",
        "covid really changed how we work forever, thoughts?",
        "{contact} has covid and I haven't seen them in weeks, hope they feel better soon",
        "hospitals in {state} say covid admissions are down {url}",
        "still wearing my mask on the bus and I don't care who judges me",
    ],
    "easy": GENERIC_TWEETS + [
        "working from home means my cat attends every meeting",
        "zoom happy hour {when} was weirdly fun",
        "hand sanitizer in every bag I own at this point",
        "finally got a haircut after months {happy}",
    ],
    "twins": {
        "cv_house": (["my coworker", "a guy on my team", "my cousin in {place}", "my friend from the gym",
                      "our neighbor", "my boss", "my wife's boss", "my husband's coworker", "my son's teacher",
                      "my roommate's girlfriend (she doesn't live here)", "my daughter's friend from school"],
                     ["my husband", "my roommate", "my son", "my wife", "my daughter", "my partner",
                      "my coworker who lives with us", "my roommate (also my coworker)", "my boyfriend (we live together)"]),
        "cv_status": (["tested negative", "got boosted", "finally tested negative", "is fine, just allergies",
                       "got the all clear", "tested positive for the flu, not covid", "tested positive for strep",
                       "had a fever but it was strep", "got a positive result... for pregnancy lol"],
                      ["tested positive", "has a fever of {temp}", "can't taste anything", "tested positive on a home test",
                       "is coughing nonstop", "tested negative at first but positive today",
                       "had a negative rapid test but the PCR came back positive", "feels fine but tested positive"]),
        "cv_me": (["tested negative", "got my booster", "feel totally fine", "got my test results back negative",
                   "tested negative again", "tested positive for flu A, not covid", "have a cold, tested negative twice",
                   "have a fever from my booster"],
                  ["tested positive", "have a fever of {temp}", "can't smell anything", "have {symptoms}",
                   "tested positive again", "tested negative yesterday but positive today",
                   "feel fine but my home test is positive"]),
        "cv_reason": (["work requires it before travel", "we're flying to see family {day}", "it's required for my new job",
                       "my kid's school needs it weekly"],
                      ["I woke up with a fever of {temp}", "{household} tested positive", "I lost my sense of smell",
                       "of {symptoms} all week"]),
    },
    "twin": [
        "{cv_house} {cv_status} {when} {meh}",
        "update: I {cv_me} {today}. {cv_tail}",
        "got swabbed {today} because {cv_reason}",
        "{cv_house} {cv_status}, so I'm {cv_tail}",
        "home test {today}: I {cv_me}. {cv_tail}",
        "{cv_house} {cv_status} after the wedding {meh}",
        "so {cv_house} {cv_status} {today}. {cv_tail}",
        "waiting in the drive-thru testing line because {cv_reason}",
    ],
    "negative_ambiguous": [
        "sore throat from screaming at the game last night {meh}",
        "headache again. not drinking wine on a tuesday ever again {meh}",
        "pretty sure I had covid in march 2020 before there were tests, never knew for sure",
        "half my office is out sick with something. staying far away",
    ],
}

# --- clinical notes -------------------------------------------------------------------------

# name, doses low to high, frequency
MEDS = [
    ("lisinopril", ["5 mg", "10 mg", "20 mg", "40 mg"], "daily"),
    ("metoprolol tartrate", ["12.5 mg", "25 mg", "50 mg"], "twice daily"),
    ("metformin", ["500 mg", "1000 mg"], "twice daily"),
    ("atorvastatin", ["20 mg", "40 mg", "80 mg"], "nightly"),
    ("furosemide", ["20 mg", "40 mg", "80 mg"], "daily"),
    ("amlodipine", ["2.5 mg", "5 mg", "10 mg"], "daily"),
    ("sertraline", ["25 mg", "50 mg", "100 mg"], "daily"),
    ("gabapentin", ["100 mg", "300 mg", "600 mg"], "three times daily"),
    ("levothyroxine", ["50 mcg", "75 mcg", "88 mcg"], "daily"),
    ("prednisone", ["5 mg", "10 mg", "20 mg", "40 mg"], "daily"),
    ("insulin glargine", ["10 units", "14 units", "20 units"], "nightly"),
    ("apixaban", ["2.5 mg", "5 mg"], "twice daily"),
    ("omeprazole", ["20 mg", "40 mg"], "daily"),
    ("tamsulosin", ["0.4 mg", "0.8 mg"], "daily"),
    ("carvedilol", ["3.125 mg", "6.25 mg", "12.5 mg"], "twice daily"),
    ("oxycodone", ["5 mg", "10 mg"], "every 6 hours as needed"),
]


def med(rng):
    name, doses, freq = rng.choice(MEDS)
    return f"{name} {rng.choice(doses)} {freq}"


def med_list(rng):
    return "; ".join(f"{name} {rng.choice(doses)} {freq}" for name, doses, freq in rng.sample(MEDS, 3))


def med_change(up):
    def slot(rng):
        name, doses, freq = rng.choice(MEDS)
        low, high = sorted(rng.sample(doses, 2), key=doses.index)
        return f"{name} from {low} to {high} {freq}" if up else f"{name} from {high} to {low} {freq}"
    return slot


ALLERGIES = ["penicillin", "sulfa", "codeine", "latex", "shellfish", "NSAIDs", "morphine"]


def allergies(rng):
    return ", ".join(f"{name} ({rng.choice(['rash', 'hives', 'GI upset', 'anaphylaxis'])})"
                     for name in rng.sample(ALLERGIES, 2))

NOTE_SLOTS = {
    "med": med,
    "medname": [name for name, _, _ in MEDS],
    "med_up": med_change(up=True),
    "med_down": med_change(up=False),
    "med_list": med_list,
    "age": num(19, 92),
    "sex": ["M", "F", "male", "female"],
    "pmh": pair(["HTN", "DM2", "CHF", "COPD", "CKD stage 3", "HLD", "afib", "asthma", "OSA",
                 "GERD", "depression", "chronic low back pain", "cirrhosis", "obesity"], "{}, {}"),
    "pmh_one": ["CHF", "COPD", "asthma", "afib with RVR"],
    "n": num(2, 9),
    "nth": num(4, 9),
    "pain": num(3, 10),
    "high_pain": num(8, 10),
    "low_pain": num(0, 3),
    "site": ["lower back", "R knee", "LLQ", "epigastric", "L shoulder", "chest wall"],
    "allergy": ALLERGIES,
    "allergies": allergies,
    "adverse": ["cough", "hyperkalemia", "bradycardia", "AKI", "dizziness", "lower extremity edema",
                "GI upset", "hypotension"],
    "section": ["HPI", "Interval history", "Assessment/Plan", "A/P", "Nursing note", "ED course",
                "Progress note", "Subjective", "Discharge summary", "Plan"],
    "context": ["Hospital day {n}.", "POD #{n}.", "Clinic f/u.", "Seen in ED.", "Telehealth visit.",
                "HD #{n}, overnight events reviewed."],
    "vitals": ["T {t}, HR {hr}, BP {sbp}/{dbp}, RR {rr}, SpO2 {spo2}% RA.",
               "VS: BP {sbp}/{dbp}, HR {hr}, afebrile, SpO2 {spo2}%.",
               "Vitals stable: HR {hr}, BP {sbp}/{dbp}."],
    "t": lambda rng: f"{rng.randint(972, 1012) / 10:.1f}",
    "hr": num(58, 118),
    "sbp": num(98, 178),
    "dbp": num(56, 92),
    "rr": num(12, 24),
    "spo2": num(89, 100),
    "cr": lambda rng: f"{rng.randint(6, 24) / 10:.1f}",
    "k": lambda rng: f"{rng.randint(33, 54) / 10:.1f}",
    "hgb": lambda rng: f"{rng.randint(78, 152) / 10:.1f}",
    "a1c": lambda rng: f"{rng.randint(75, 124) / 10:.1f}%",
    "bmi": num(31, 48),
    "weeks": num(1, 6),
    "ef": num(30, 65),
}

# Neutral sentences that neither stigmatize nor change a medication.
NOTE_ROUTINE = [
    "S/p lap chole. Tolerating diet, pain controlled, ambulating.",
    "Plan: discharge home tomorrow with PCP f/u.",
    "Admitted for {pmh_one} exacerbation, improving on current management.",
    "Echo shows EF {ef}%, no wall motion abnormalities.",
    "Pt seen and examined, agrees with plan of care.",
    "Presents with {n} days of {site} pain, no trauma.",
    "Cultures no growth at 48 hours.",
    "Pt ambulating independently, cleared by PT for home.",
    "Glucose well controlled, A1c {a1c}.",
    "Skin intact, no pressure injuries.",
    "Counseled on diet and exercise; pt engaged and asked good questions.",
    "Imaging reviewed with patient; no acute findings.",
    "Screening colonoscopy due next year.",
    "CT head negative for acute intracranial process.",
    "UA unremarkable. Urine culture pending.",
    "Pt reports sleeping well, appetite good.",
    "Drain output {n}0 mL over 24 hours, serosanguinous.",
    "Incentive spirometer encouraged, pt pulling {n}00 mL.",
    "Pain well controlled, rates {low_pain}/10 at rest.",
    "Seen with attending; plan as below.",
    "Tele without events overnight.",
    "Lives alone, daughter checks in daily; home safety eval ordered.",
]

NOTE_FILLER = [
    "Lungs clear bilaterally.", "Abdomen soft, NT/ND.", "No acute events overnight.",
    "Ambulating in hallway with PT.", "Tolerating regular diet.",
    "Labs reviewed: Cr {cr}, K {k}, Hgb {hgb}.", "Follow up in clinic in {weeks} weeks.",
    "Discussed plan with patient, who agrees.", "Wound c/d/i, no erythema.",
    "Afebrile, hemodynamically stable.", "Neuro: A&Ox3, no focal deficits.",
    "Family at bedside, questions answered.", "Dispo: home when medically stable.",
    "Lives with spouse, independent in ADLs.", "CXR without acute process.", "Full code.",
    "Will obtain repeat BMP in AM.", "PT/OT eval pending.",
]

NOTE_ABBREVIATIONS = [("patient", "pt"), ("Patient", "Pt"), ("twice daily", "BID"),
                      ("three times daily", "TID"), ("as needed", "PRN"), ("every 6 hours", "q6h"),
                      ("history of", "h/o"), ("without", "w/o"), ("follow up", "f/u"),
                      ("by mouth", "PO"), ("nightly", "qHS")]
NOTE_TYPOS = [("patient", "pateint"), ("received", "recieved"), ("tomorrow", "tomorow"),
              ("discussed", "dicussed"), ("medication", "medicaiton"), ("with", "wiht")]


def note_template(rng, core):
    """Set the labeled sentence among a header, demographics, vitals and neutral filler."""
    parts = []
    if rng.random() < 0.8:
        parts.append("{section}: {context}")
    if rng.random() < 0.7:
        parts.append("{age} yo {sex} with h/o {pmh}.")
    if rng.random() < 0.4:
        parts.append("{vitals}")
    parts.append(core)
    parts += rng.sample(NOTE_FILLER, rng.randint(0, 3))
    return ("\n" if rng.random() < 0.2 else " ").join(parts)


def roughen_note(rng, text):
    for word, short in NOTE_ABBREVIATIONS:
        if rng.random() < 0.5:
            text = re.sub(rf"\b{word}\b", short, text)
    if rng.random() < 0.08:
        word, misspelt = rng.choice(NOTE_TYPOS)
        text = re.sub(rf"\b{word}\b", misspelt, text, count=1)
    return text


STIGMA = {
    "prefix": "stg",
    "slots": {
        "sg_tail": ["will continue to monitor.", "team aware.", "plan discussed with attending.", "SW following.", "will readdress tomorrow."],
        "sg_why": ["", " after discussing risks and benefits", "; will readdress tomorrow", " x{n}"],
    },
    "positive": [
        "Pt is non-compliant with {medname} and again presents with {pmh_one} exacerbation.",
        "Patient claims to have {high_pain}/10 pain but was observed laughing on the phone.",
        "Drug-seeking behavior noted; pt requesting IV dilaudid by name.",
        "Pt insists all medications are taken as prescribed, though A1c remains {a1c}.",
        "Patient belligerent with nursing staff overnight, yelling and cursing.",
        "Known frequent flyer to this ED, {nth}th visit this month for the same complaint.",
        "Pt refuses to ambulate despite multiple requests from PT.",
        "States allergy to {allergy}, tramadol and Tylenol; 'only dilaudid works.'",
        "Pt is a poor historian and unreliable; story changes with each provider.",
        "Patient is manipulative and splits staff.",
        "Pt allegedly quit drinking {n} months ago.",
        "Pt refuses to quit smoking and continues to abuse alcohol.",
        "Pt is an addict requesting early refill, 'lost' the prescription again.",
        "Patient is difficult and uncooperative with exam.",
        "Obese, unmotivated pt who is not interested in lifestyle changes.",
        "Pt reportedly 'forgot' to take meds for the {nth}th time this month.",
        "Patient non-compliant with diet and fluid restriction, noncompliance is chronic.",
        "Pt claims the {medname} 'never worked' and demands something stronger.",
        "Patient insists on being discharged and is combative when redirected.",
    ],
    "positive_ambiguous": [
        "Pt rates pain {high_pain}/10 while sleeping comfortably on arrival.",
        "Patient refused AM labs.",
        "Pt demanding food tray and early discharge.",
    ],
    "hard": [
        "Pt reports {pain}/10 pain in {site}, worse with movement; ice and acetaminophen as needed.",
        "Pt declined the flu vaccine after discussing risks and benefits; will readdress next visit.",
        "Patient has not been able to afford {medname}; SW consulted for assistance program.",
        "History of opioid use disorder, in sustained remission on buprenorphine.",
        "No drug-seeking behavior observed; pain consistent with exam findings.",
        "Insurance claims for home O2 pending; CM following.",
        "Pt chose to leave before imaging; capacity assessed and intact, risks discussed.",
        "Patient missed last {n} appointments due to lack of transportation; ride vouchers given.",
        "Alcohol use: {n} drinks/week. Counseled on reduction; pt interested in resources.",
        "Pt with chronic pain on stable regimen; PDMP reviewed and consistent.",
        "Patient with BMI {bmi}; discussed nutrition goals together.",
        "Pt prefers to continue oral agents rather than start insulin; shared decision made.",
        "Pt declines further workup at this time and understands the risks.",
        "Pt reports taking {medname} most days, misses doses when working night shifts.",
        "Pt reports the nursing home refuses to hold the bed beyond 14 days; CM aware.",
        "No concerns for non-compliant behavior; pill bottles brought in and counts correct.",
        "Pt with h/o alcohol use disorder, sober {n} years, attends meetings weekly.",
    ],
    "easy": NOTE_ROUTINE + [
        "Pt pleasant and cooperative with exam.",
        "Social: retired teacher, lives with spouse, nonsmoker.",
    ],
    "twins": {
        "sg_say": (["reports", "states", "endorses", "notes"], ["claims", "insists", "alleges", "swears"]),
        "sg_adhere": (["compliant with", "adherent to", "taking", "tolerating", "on"],
                      ["non-compliant with", "noncompliant again with", "not compliant with", "refusing"]),
        "sg_behave": (["pleasant", "cooperative", "anxious", "tearful", "calm", "quiet"],
                      ["belligerent", "combative", "demanding", "uncooperative", "difficult", "hostile"]),
        "sg_seek": (["No", "No evidence of", "No signs of", "Low concern for"], ["Concern for", "Ongoing", "Pattern of", "Likely"]),
        "sg_refuse": (["declined", "deferred", "was unable to complete", "postponed"], ["refuses", "refused again", "flatly refused"]),
    },
    "twin": [
        "Pt {sg_say} {pain}/10 pain in {site}.",
        "Pt {sg_say} good adherence to {medname}.",
        "Pt {sg_say} {n} drinks per week.",
        "Pt {sg_adhere} {medname}; {sg_tail}",
        "Patient {sg_behave} during dressing change; {sg_tail}",
        "{sg_seek} drug-seeking behavior; {sg_tail}",
        "Pt {sg_refuse} AM labs{sg_why}.",
        "Pt {sg_refuse} PT today{sg_why}.",
        "Pt {sg_say} the {medname} does not work.",
        "Pt {sg_behave} with staff when told about discharge plan.",
    ],
    "negative_ambiguous": [
        "Pt tearful and frustrated about length of stay; chaplain visit requested.",
        "Pt states pain improved from {high_pain}/10 to 4/10 after oxycodone.",
        "Patient asking about discharge timing several times today; team updated pt.",
    ],
}

MEDICATION_CHANGE = {
    "prefix": "mcd",
    "twin_share": 0.15,
    "slots": {
        "mc_why": ["given BP {sbp}/{dbp}", "per cardiology", "given {reason_down}", "per pt preference", "given K {k}", "for now"],
        "mc_tail": ["will discuss at next visit.", "pharmacy notified.", "PCP aware.", "reinforced importance of adherence.", "f/u {weeks} weeks."],
        "switch": pair(["warfarin", "apixaban", "rivaroxaban", "losartan", "lisinopril",
                        "sertraline", "escitalopram", "glipizide", "sitagliptin"], "{} to {}"),
        "reason_down": ["bradycardia", "hypotension", "dizziness", "AKI", "fatigue", "falls"],
        "abx": pair(["ceftriaxone", "cefpodoxime", "vancomycin", "doxycycline", "cephalexin",
                     "amoxicillin-clavulanate"], "{} to {}"),
        "level": lambda rng: f"{rng.randint(20, 35) / 10:.1f}",
    },
    "positive": [
        "Increase {med_up}.",
        "Decrease {med_down} given {reason_down}.",
        "Started {med}; pt counseled on side effects.",
        "Discontinue {medname} due to {adverse}.",
        "Switched from {switch} given difficulty with monitoring.",
        "Prednisone taper: 40 mg x3 days, then 30 mg x3 days, then 20 mg x3 days, then stop.",
        "Hold home {medname} for {reason_down}; resume when BP > 110 systolic.",
        "Pt self-discontinued {medname} {weeks} weeks ago due to {adverse}.",
        "Will start {med} today; recheck BMP in 1 week.",
        "Restarted home {med} now that pt is tolerating PO.",
        "Abx changed from {abx} to complete 7-day course.",
        "Uptitrated {med_up} per home log.",
        "Home {medname} stopped on admission given {adverse}; will not restart.",
        "Dose of {medname} reduced for CrCl {n}0.",
        "Add {med} to current regimen.",
        "Tapering off {medname} over the next {weeks} weeks.",
    ],
    "positive_ambiguous": [
        "If BP remains >140/90 at next visit, plan to uptitrate {medname}.",
        "Consider tapering {medname} once mood stable for 6 months.",
        "Pt taking {medname} only every other day to make supply last.",
    ],
    "hard": [
        "Continue {med}.",
        "Continue current regimen; no medication changes today.",
        "Home meds: {med_list}.",
        "Refilled {med}, 90-day supply.",
        "Allergies: {allergies}. No changes to home medications.",
        "Discussed increasing {medname}, but BP at goal on home readings; will continue current dose.",
        "Pt tolerating {med} well without side effects; dose unchanged.",
        "Med rec completed; home regimen confirmed with pharmacy.",
        "Adherent to {med} per pill count.",
        "INR {level}, therapeutic; continue same warfarin dose.",
        "Pt has been on {med} for years, tolerating well.",
        "Pt stopped by clinic to pick up forms; no medication issues.",
        "Medications reviewed, no changes. Continue {med_list}.",
    ],
    "easy": NOTE_ROUTINE + [
        "Pharmacy consulted for vaccine schedule review.",
        "Pt asked about travel; no restrictions from a cardiac standpoint.",
    ],
    "twins": {
        "mc_do": (["Continue", "Continue home", "No change to", "Will continue", "Maintain", "Stable on"],
                  ["Increase", "Decrease", "Hold", "Stop", "Start", "Discontinue"]),
        "mc_plan": (["Discussed increasing, but will keep", "Pt asked about stopping; will continue",
                     "Considered reducing; decided to keep", "No plan to change"],
                    ["Plan to increase", "Will uptitrate", "Decided to taper", "Will reduce"]),
        "mc_need": (["does not need", "does not require", "needs no"], ["needs", "will require", "requires"]),
        "mc_pt": (["is still taking", "has not missed any doses of", "continues", "takes"],
                  ["stopped taking", "has been skipping", "has been halving", "stopped refilling"]),
    },
    "twin": [
        "{mc_do} {medname} {mc_why}.",
        "{mc_do} {med} {mc_why}.",
        "{mc_plan} {medname}; recheck in {weeks} weeks.",
        "Pt {mc_need} dose adjustment of {medname} for CrCl {n}0.",
        "Pt {mc_pt} {medname} per pt report; {mc_tail}",
        "{mc_do} {medname}; BMP in {weeks} weeks.",
        "Per daughter, pt {mc_pt} {medname} at home.",
    ],
    "negative_ambiguous": [
        "Pt asks whether {medname} can be stopped; reviewed indication, will continue for now.",
        "No dose adjustment needed for renal function (CrCl {n}0).",
        "Pharmacy substituted generic {medname}; same dose and schedule.",
    ],
}

TASK_TEXTS = {
    "breast_cancer": BREAST_CANCER,
    "medication_regimen_change": MEDICATION_REGIMEN,
    "adverse_pregnancy_outcome": ADVERSE_PREGNANCY,
    "covid19_potential_case": COVID,
    "stigma_labeling": STIGMA,
    "medication_change_discussion": MEDICATION_CHANGE,
}


def category_counts(positives, twin_share):
    """(category, label, count) for one file of ROWS rows."""
    negatives = ROWS - positives
    pos_twin, neg_twin = round(twin_share * positives), round(twin_share * negatives)
    pos_ambiguous = round(AMBIGUOUS_SHARE * positives)
    neg_ambiguous = round(AMBIGUOUS_SHARE * negatives)
    hard = round(HARD_SHARE * (negatives - neg_twin))
    return [
        ("positive", 1, positives - pos_twin - pos_ambiguous),
        ("twin", 1, pos_twin),
        ("positive_ambiguous", 1, pos_ambiguous),
        ("twin", 0, neg_twin),
        ("hard", 0, hard),
        ("negative_ambiguous", 0, neg_ambiguous),
        ("easy", 0, negatives - neg_twin - hard - neg_ambiguous),
    ]


def twin_values(rng, spec, template, label):
    """The twin slots of a template, filled for a label: every slot's positive values for a
    positive row; for a negative row, the negative values of at least one slot."""
    names = sorted(set(SLOT.findall(template)) & spec["twins"].keys())
    negative = () if label else rng.sample(names, rng.randint(1, len(names)))
    return {name: spec["twins"][name][name not in negative] for name in names}


def generate(key, spec, positive_rate):
    """The rows (id, text, label) of one task's file, shuffled, and its planted errors
    (id, label as written, correct label)."""
    rng = random.Random(f"{SEED}-{key}")
    is_note = "tags" not in spec  # tweets carry hashtags, notes do not
    slots = {**(NOTE_SLOTS if is_note else TWEET_SLOTS), **spec["slots"]}
    seen, rows = set(), []
    for category, label, count in category_counts(round(ROWS * positive_rate), spec.get("twin_share", TWIN_SHARE)):
        made = tries = 0
        while made < count:
            tries += 1
            if tries > MAX_TRIES:
                raise RuntimeError(f"{key}/{category}: too few distinct texts")
            template = rng.choice(spec[category])
            row_slots = slots | twin_values(rng, spec, template, label) if category == "twin" else slots
            if is_note:
                text = roughen_note(rng, fill(rng, note_template(rng, template), row_slots))
            else:
                tags = spec["tags"] if category != "easy" else ()  # no topic hashtags on chit-chat
                text = roughen_tweet(rng, fill(rng, template, row_slots), tags)
            if text not in seen:
                seen.add(text)
                rows.append((text, label, category))
                made += 1
    rng.shuffle(rows)
    ids = [f"{spec['prefix']}-{i:04d}" for i in range(1, len(rows) + 1)]
    # Planted errors: as many clear positives written as 0 as plain negatives written as 1, so the
    # positive rate stays Table 1's; a model that reads the text gets them "wrong".
    flipped = set()
    for category in ("positive", "easy"):
        flipped.update(rng.sample([i for i, row in enumerate(rows) if row[2] == category], ERRORS_PER_LABEL))
    written = [(ids[i], text, 1 - label if i in flipped else label) for i, (text, label, _) in enumerate(rows)]
    errors = [(ids[i], 1 - rows[i][1], rows[i][1]) for i in sorted(flipped)]
    return written, errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "samples", help="output folder")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    answer_key = []
    for key, task in load_tasks().items():
        rows, errors = generate(key, TASK_TEXTS[key], task.positive_rate)
        write_csv(out / f"{key}.csv", ["id", "text", "label"], rows)
        answer_key += [(key, *error) for error in errors]
        positives = sum(label for _, _, label in rows)
        print(f"{key}: {len(rows)} rows, positive rate {positives / len(rows):.3f} "
              f"(Table 1: {task.positive_rate:.3f}), {len(errors)} planted label errors")
    write_csv(out / "label_errors.csv", ["task", "id", "gold", "correct"], answer_key)


def write_csv(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


if __name__ == "__main__":
    main()
