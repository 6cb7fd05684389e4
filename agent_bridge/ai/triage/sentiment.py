"""Sentiment, urgency and profanity of a customer message, offline, from VADER plus a few cue lists.

VADER is a rule-based English lexicon (it ships inside the vaderSentiment package): no training, no
download, ~0.05 ms a message, and it already reads negation ("not helpful"), intensifiers ("very"),
CAPS and "!!!". What it lacks for support chat is added here: request words it mis-scores, negative
words and urgency cues in Spanish, French, German, Portuguese and Italian, and a profanity list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from agent_bridge.ai.triage.intents import fold, sentences

# VADER's own recommended cut-offs for its compound score.
POSITIVE_AT = 0.05
NEGATIVE_AT = -0.05

# Support-chat vocabulary VADER scores as if it were an opinion. "please help me cancel" is a polite
# request, not a positive (help +1.7, please +1.3) or negative (cancel -1.0) statement; "customer
# support/care" is a team's name; "urgent" (+0.8 in VADER!) is handled as urgency, not as mood.
_NEUTRAL_IN_SUPPORT = (
    "help", "helping", "please", "want", "like", "support", "care", "cancel", "cancelled", "cancelling",
    "pay", "urgent", "sorry",
)  # fmt: skip
# Politeness formulas that carry VADER's negative words without any mood: "sorry for any mistakes",
# "I hate to ask", "sorry if this is a silly question". Removed before scoring.
_POLITENESS = re.compile(
    r"\b(?:(?:sorry|apologies|i apologi[sz]e) (?:to bother you|for (?:the|any|my) (?:trouble|bother|delay|late reply"
    r"|slow reply|mistakes?|typos?|confusion|inconvenience))|(?:if this is |for )?an? (?:silly|stupid|dumb) question"
    r"|i hate to (?:ask|bother you|say this|be a pain|trouble you))\b",
    re.IGNORECASE,
)
# ...and a few it gets the wrong way round in this domain: "your courier is a joke".
_DOMAIN_VALENCE = {"joke": -1.2, "scam": -2.7, "ripoff": -2.5, "rip-off": -2.5, "useless": -2.0}

# Negative words in the other supported languages, on VADER's -4..+4 scale (about the valence of the
# English equivalent in VADER's lexicon). Added to the lexicon, so VADER's sums, intensifiers and
# normalisation apply to them too; both the accented and the unaccented spelling are added.
_NEGATIVE_WORDS = {
    # Spanish
    "mierda": -3.0, "estafa": -2.7, "pésimo": -3.0, "pésima": -3.0, "horrible": -2.5, "vergüenza": -2.0,
    "inaceptable": -2.5, "harto": -2.0, "harta": -2.0, "enfadado": -2.3, "enfadada": -2.3,
    "enojado": -2.3, "enojada": -2.3, "furioso": -2.7, "furiosa": -2.7, "decepcionado": -2.1,
    "decepcionada": -2.1, "basura": -2.5, "asco": -2.5, "peor": -2.5, "ladrones": -2.7, "ridículo": -1.5,
    # French
    "nul": -2.0, "nulle": -2.0, "arnaque": -2.7, "merde": -3.0, "honte": -2.0, "inacceptable": -2.5,
    "inadmissible": -2.5, "énervé": -2.3, "énervée": -2.3, "furieux": -2.7, "furieuse": -2.7,
    "déçu": -2.1, "déçue": -2.1, "scandaleux": -2.5, "scandale": -2.5, "pire": -2.5, "voleurs": -2.7,
    # German
    "scheiße": -3.0, "scheisse": -3.0, "betrug": -2.7, "betrüger": -2.7, "abzocke": -2.7, "mies": -2.0,
    "schlecht": -2.0, "schlimmste": -3.0, "inakzeptabel": -2.5, "wütend": -2.7, "enttäuscht": -2.1,
    "frechheit": -2.5, "katastrophe": -2.5, "unverschämt": -2.5, "ärgerlich": -2.0,
    # Portuguese
    "merda": -3.0, "golpe": -2.5, "péssimo": -3.0, "péssima": -3.0, "vergonha": -2.0,
    "inaceitável": -2.5, "absurdo": -2.0, "irritado": -2.3, "irritada": -2.3, "decepcionante": -2.1,
    "lixo": -2.5, "ladrões": -2.7, "horrível": -2.5, "pior": -2.5,
    # Italian
    "schifo": -3.0, "truffa": -2.7, "vergogna": -2.0, "inaccettabile": -2.5, "pessimo": -3.0,
    "pessima": -3.0, "arrabbiato": -2.3, "arrabbiata": -2.3, "deluso": -2.1, "delusa": -2.1,
    "ladri": -2.7, "orribile": -2.5, "peggiore": -2.5, "vergognoso": -2.5,
}  # fmt: skip

# Urgency: words and phrases that ask for speed or name an emergency, matched on folded text (lower
# case, accents removed) at word boundaries. "quick question" and "now" alone are not urgency.
_URGENCY = re.compile(
    r"\b(?:"
    r"urgent(?:ly)?|asap|a\.s\.a\.p|emergency|immediately|right (?:now|away)|straight away|at once"
    r"|as soon as possible|time[- ]sensitive"  # English
    r"|urgente|urgencia|emergencia|inmediatamente|de inmediato|ahora mismo|ya mismo"
    r"|lo antes posible|cuanto antes"  # Spanish
    r"|urgence|immediatement|tout de suite|au plus vite|des que possible|le plus vite possible"
    r"|sur le champ"  # French
    r"|dringend|sofort|umgehend|notfall|so schnell wie moglich|schnellstmoglich|eilig|unverzuglich"  # German
    r"|imediatamente|agora mesmo|o mais rapido possivel|o quanto antes"  # Portuguese (+ urgencia...)
    r"|urgenza|emergenza|immediatamente|subito|al piu presto|il prima possibile"  # Italian
    r")\b"
)

# Repeated contact: the customer has asked before and is still waiting. Strong cues ("third time",
# "how many times", "keep asking") mark an upset customer on their own; weak ones ("again", "still")
# only in a message that is negative already ("can I order again?" is no complaint). Folded text.
_REPEAT_STRONG = re.compile(
    r"\b(?:"
    r"(?:for )?the (?:second|third|fourth|fifth|\d+(?:st|nd|rd|th)|nth|umpteenth) time|(?:2|3|4|5|two|three|four|five)"
    r" times (?:now|already)|how many (?:more )?times|i (?:keep|kept) (?:asking|telling you|writing|calling|chasing)"
    r"|(?:still|yet) again|once again|(?:asked|written|called|emailed|contacted you) (?:\w+ )?(?:several|many|multiple)"
    r" times"  # English
    r"|por (?:segunda|tercera|cuarta|enesima) vez|(?:es|ya es) la (?:segunda|tercera|cuarta) vez|cuantas veces"
    r"|sigo esperando"  # Spanish
    r"|pour la (?:deuxieme|troisieme|quatrieme|enieme) fois|combien de fois|j'attends toujours"  # French
    r"|zum (?:zweiten|dritten|vierten|x-ten) mal|schon wieder|wie oft noch|warte immer noch"  # German
    r"|pela (?:segunda|terceira|quarta) vez|quantas vezes|continuo esperando|ainda estou esperando"  # Portuguese
    r"|per la (?:seconda|terza|quarta|ennesima) volta|quante volte|sto ancora aspettando"  # Italian
    r")\b"
)
_REPEAT_WEAK = re.compile(
    r"\b(?:again|still|otra vez|de nuevo|todavia|encore|toujours pas|de nouveau|nochmal|immer noch|erneut"
    r"|de novo|outra vez|ainda nao|di nuovo|ancora)\b"
)
# Threats to leave, to dispute a charge or to go to a regulator or a lawyer: hand off at once, whatever
# the intent. Folded text, six languages.
_THREAT = re.compile(
    r"\b(?:"
    r"charge ?backs?|dispute (?:the|this|my|a) (?:charge|payment|transaction)|(?:call|contact|tell) my bank"
    r"|report (?:you|this|your company)|better business bureau|bbb|lawyers?|attorney|legal action|sue you"
    r"|small claims|trading standards|consumer protection|take my business elsewhere"
    r"|never (?:order|buy|shop|purchase)(?:ing)? (?:from|with|here)? ?(?:you|again)|(?:switch|go|going|move) to"
    r" (?:a |your )?competitors?|leave a (?:bad|negative|1[- ]star|one[- ]star) review|close my account for good"
    # English
    r"|contracargo|disputar (?:el|este) cargo|abogados?|demandar(?:les)?|denunciar(?:les)?"
    r"|nunca mas (?:compro|comprare|pido)|oficina del consumidor"  # Spanish
    r"|retrofacturation|contester (?:le|ce) (?:paiement|prelevement)|avocats?|porter plainte|plus jamais"
    r"|association de consommateurs"  # French
    r"|ruckbuchung|anwalt|anzeige erstatten|verbraucherzentrale|nie wieder (?:bestellen|kaufen|bei ihnen)"
    # German
    r"|estorno|chargeback|advogados?|processar|procon|nunca mais (?:compro|vou comprar)"  # Portuguese
    r"|storno|avvocat[oi]|denuncia|mai piu (?:ordino|compro|da voi)"  # Italian
    r")\b"
)

# The customer says they are upset, or passes a verdict on the shop: "I'm really upset", "so angry",
# "terrible service", "this is unacceptable", "you people are useless". Folded text, six languages.
# Needed beside the mood score: VADER scores "I'm really upset, my package never arrived" at -0.44
# and "I can't believe how bad your service is" as positive.
_FEELINGS = (
    r"(?:upset|angry|furious|livid|annoyed|frustrated|disappointed|disgusted|outraged|fed up|pissed off|unhappy"
    r"|fuming|appalled|sick and tired|so mad|really mad)"
)
_VERDICTS = (
    r"(?:unacceptable|ridiculous|outrageous|a disgrace|disgraceful|a joke|a scam|appalling|pathetic|shameful"
    r"|a nightmare|a farce|absurd)"
)
_UPSET_SAYS = re.compile(
    r"\b(?:"
    rf"i(?:['’]?m| am| feel| felt| was| have been|['’]ve been| got)(?: (?:so|really|very|extremely|totally|absolutely"
    rf"|quite|incredibly|beyond|getting|becoming|now|just))* {_FEELINGS}"
    rf"|(?:so|really|very|extremely|beyond|absolutely) {_FEELINGS}|fed up|sick and tired"
    r"|(?:worst|terrible|awful|horrible|appalling|pathetic|disgraceful|useless|rubbish|garbage|lousy|shocking"
    r"|atrocious|abysmal|rude|incompetent|shoddy|dreadful) (?:customer )?(?:service|support|shop|store|company|app"
    r"|website|site|experience|quality|staff|people|agents?|courier|delivery|product|packaging|communication)"
    rf"|(?:this|that|it)(?: is|['’]s| was) (?:absolutely |totally |completely |just |so |really )?{_VERDICTS}"
    r"|(?:you|you people|you guys|your (?:staff|team|company|shop|agents?|courier|service|support)) (?:are|is)"
    r" (?:so |completely |totally |absolutely |just )?(?:useless|incompetent|pathetic|a joke|hopeless|clueless"
    r"|liars|thieves|scammers|rude|a disgrace)"
    r"|i hate (?:this|your|you|dealing|it)|(?:feel|felt|was|got|been) (?:cheated|ripped off|scammed|lied to|robbed)"
    r"|what an? (?:horrible|terrible|awful|shambles|joke|disgrace|nightmare|mess)"
    r"|how (?:bad|terrible|awful|poor|useless) (?:your|the) (?:service|support|company|shop)"  # English
    r"|(?:estoy|me siento|estamos) (?:muy |tan |super |realmente |bastante )?(?:enfadad|enojad|furios|hart"
    r"|decepcionad|molest|indignad|cabread)[oa]s?|(?:es|esto es|que) (?:una verguenza|inaceptable|indignante"
    r"|una estafa|un desastre|vergonzoso)|pesimo servicio|servicio (?:pesimo|horrible|fatal|nefasto)"  # Spanish
    r"|je suis (?:tres |vraiment |tellement |trop |super )?(?:enervee?|furieux|furieuse|decue?|en colere"
    r"|mecontente?|degoutee?|excedee?)|c['’]est (?:vraiment |totalement |completement )?(?:inadmissible"
    r"|inacceptable|scandaleux|une honte|honteux|une arnaque|n['’]importe quoi|lamentable|une catastrophe)"
    r"|service (?:client )?(?:nul|lamentable|deplorable|catastrophique)|j['’]en ai marre|ras le bol"  # French
    r"|ich bin (?:so |sehr |total |echt |wirklich |extrem )?(?:wutend|sauer|enttauscht|verargert|genervt"
    r"|stinksauer|frustriert|emport)|(?:das ist|so eine|was fur eine) (?:eine )?(?:frechheit|unverschamtheit"
    r"|katastrophe|zumutung|sauerei|schande)|mir reicht(?:s|'s)?|es reicht"  # German
    r"|(?:estou|to|fiquei) (?:muito |tao |super |realmente |bem )?(?:irritad|chatead|revoltad|decepcionad|furios"
    r"|indignad)[oa]|(?:e|isso e|que) (?:um absurdo|uma vergonha|inaceitavel|ridiculo|uma palhacada|um descaso)"
    r"|pessimo (?:atendimento|servico)|atendimento (?:pessimo|horrivel)"  # Portuguese
    r"|sono (?:molto |davvero |cosi |veramente |proprio )?(?:arrabbiat|furios|delus|infuriat|indignat|incazzat)[oa]"
    r"|sono stuf[oa]|(?:e|questo e|che) (?:una vergogna|inaccettabile|ridicolo|uno schifo|una truffa|assurdo"
    r"|vergognoso)|servizio (?:pessimo|vergognoso|scandaloso)"  # Italian
    r")\b"
)

# A verdict that is a sentence of its own: "Awful. Just awful." (a question's answer, "terrible?", is not).
_VERDICT_SENTENCE = re.compile(
    r"(?:^|[.!?]\s+)(?:just |absolutely |simply |totally )?(?:awful|terrible|horrible|appalling|pathetic|ridiculous"
    r"|unacceptable|disgraceful|shocking|outrageous|inadmissible|inaceptable|inaceitavel|inaccettabile"
    r"|inakzeptabel|unverschamt)(?:[.!]|\s*$)"
)
# Swearing, matched on folded text. A small list on purpose: each entry is unambiguous at a word
# boundary ("ass" and "hell" are not: "pass", "hello", "what the hell" is too mild to flag), with the
# usual disguises ("f*ck", "sh1t") and the English abbreviations customers type (wtf, ffs, stfu).
_PROFANITY = re.compile(
    r"\b(?:"
    r"(?:mother)?f+[u*@#]+c?k+(?:ing|in|ed|er|ers|s|head)?|fck\w*|fuk\w*|fu?cking|wtf|ffs|stfu"
    r"|sh[i1!*]t(?:ty|s|ting|head)?|bullsh[i1!*]t|crap(?:py)?|damn(?:ed|it)?|god ?damn\w*|dammit"
    r"|bloody|bastards?|assholes?|arseholes?|dumbass|jackass|bitch(?:es|ing)?|dickheads?"
    r"|piss(?:ed)?(?: off)?|twats?|wankers?|cunts?|screw you"  # English
    r"|mierda|joder|jodido|puta|puto|carajo|cabron(?:es)?|gilipollas"  # Spanish
    r"|merde|putain|connards?|connasse|salauds?|encule"  # French
    r"|scheiss\w*|verdammt\w*|arschloch|arschlocher"  # German ("mist" is English fog)
    r"|porra|caralho|merda|foda-se|fodase"  # Portuguese
    r"|cazzo|vaffanculo|stronz[oi]|minchia"  # Italian
    r")(?!\w)"
)

# "!!!" and ALL-CAPS shouting read as urgency only when the message is not positive: "THANK YOU SO
# MUCH!!!" is enthusiasm, "WHERE IS MY ORDER!!!" is not.
MANY_EXCLAMATIONS = 3
_SHOUT_WORD = re.compile(r"\b[^\W\d_]{2,}\b")
SHOUTING_MIN_WORDS = 3  # one capitalised word is an acronym or an order code, not shouting
SHOUTING_SHARE = 0.7


@dataclass(frozen=True, slots=True)
class Sentiment:
    label: Literal["negative", "neutral", "positive"]
    score: float  # VADER compound in [-1, 1], with the support-chat adjustments above
    urgency: bool
    profanity: bool
    signals: tuple[str, ...]  # why, for people reading a decision: "urgency: 'asap'", "shouting", ...
    # The cue that marks an upset customer whatever the mood score ("repeat contact: 'third time'",
    # "threat: 'chargeback'"), or "" when none did.
    upset_cue: str = ""


def _build_analyzer() -> SentimentIntensityAnalyzer:
    analyzer = SentimentIntensityAnalyzer()  # reads the lexicon file once (~30 ms)
    for word in _NEUTRAL_IN_SUPPORT:
        analyzer.lexicon.pop(word, None)
    analyzer.lexicon.update(_DOMAIN_VALENCE)
    for word, valence in _NEGATIVE_WORDS.items():
        analyzer.lexicon[word] = valence
        analyzer.lexicon[fold(word)] = valence
    return analyzer


_ANALYZER = _build_analyzer()


def _is_shouting(text: str) -> bool:
    words = _SHOUT_WORD.findall(text)
    if len(words) < SHOUTING_MIN_WORDS:
        return False
    return sum(w.isupper() for w in words) / len(words) >= SHOUTING_SHARE


def analyse_sentiment(text: str) -> Sentiment:
    """Score the mood of one message and flag urgency and swearing, saying which cues fired."""
    # The most negative sentence sets the mood. VADER sums a whole message, so a long one adds up mild
    # words that are no complaint ("a long and stressful week at work", "on my phone, sorry for any
    # mistakes") until it reads as an upset customer: 1 in 10 rambling questions was handed off so.
    polite = _POLITENESS.sub("", text)
    score = min((float(_ANALYZER.polarity_scores(s)["compound"]) for s in sentences(polite)), default=0.0)
    label: Literal["negative", "neutral", "positive"] = (
        "negative" if score <= NEGATIVE_AT else "positive" if score >= POSITIVE_AT else "neutral"
    )
    folded = fold(text)
    signals: list[str] = []
    if label == "negative":
        signals.append(f"negative wording ({score:.2f})")
    urgent_words = sorted({m.group() for m in _URGENCY.finditer(folded)})
    signals.extend(f"urgency: {word!r}" for word in urgent_words)
    agitated = False
    if label != "positive":
        if text.count("!") >= MANY_EXCLAMATIONS:
            signals.append(f"{text.count('!')} exclamation marks")
            agitated = True
        if _is_shouting(text):
            signals.append("shouting (all caps)")
            agitated = True
    swear_words = sorted({m.group() for m in _PROFANITY.finditer(folded)})
    signals.extend(f"profanity: {word!r}" for word in swear_words)
    upset_cue = ""
    if threat := _THREAT.search(folded):
        upset_cue = f"threat: {threat.group()!r}"
    elif repeat := _REPEAT_STRONG.search(folded):
        upset_cue = f"repeat contact: {repeat.group()!r}"
    elif says := _UPSET_SAYS.search(folded) or _VERDICT_SENTENCE.search(folded):
        upset_cue = f"says: {says.group().strip(' .!?')!r}"
    elif label == "negative" and (repeat := _REPEAT_WEAK.search(folded)):
        upset_cue = f"repeat contact: {repeat.group()!r} in a negative message"
    if upset_cue:
        signals.append(upset_cue)
    return Sentiment(
        label=label,
        score=max(-1.0, min(1.0, score)),
        urgency=bool(urgent_words) or agitated,
        profanity=bool(swear_words),
        signals=tuple(signals),
        upset_cue=upset_cue,
    )
