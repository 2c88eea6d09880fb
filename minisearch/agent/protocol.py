"""The agent protocol: the one module that owns the tags and the prompts.

A trajectory, as the model sees it (the environment writes only the <information> block):

    <|im_start|>system ... <|im_end|>
    <|im_start|>user
    Who founded Vethmora Holdings? <|im_end|>
    <|im_start|>assistant
    <think>I need the company's page.</think><search>Vethmora Holdings founder</search>
    <information>Doc 1 (Title: Vethmora Holdings) ... founded in 1901 by Quorvelle Dantrisk ...
    </information>
    <think>The page names the founder.</think><answer>Quorvelle Dantrisk</answer>

Generation stops at `</search>` or `</answer>`; callers hand `parse_turn` the model's text
*including* the stop string (HF `generate` keeps it; with vLLM set
`include_stop_str_in_output=True`). Model text is untrusted: `parse_turn` never raises, it
names what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from minisearch.records import MASK

THINK, SEARCH, INFORMATION, ANSWER = "think", "search", "information", "answer"
TAGS = [f"<{t}>" for t in (THINK, SEARCH, INFORMATION, ANSWER)] + [f"</{t}>" for t in (THINK, SEARCH,
                                                                                       INFORMATION, ANSWER)]
STOP = ("</search>", "</answer>")
MAX_QUERY_CHARS = 500
_OUR_TAG = re.compile(r"<(/?)(think|search|information|answer)\b", re.I)
_INFORMATION_TURN = re.compile(r"\n?(<information>.*?</information>)\n?", re.S)  # the tool's turn


def system_prompt(max_turns: int = 4) -> str:
    return (
        "You answer by searching a local encyclopedia. Think inside <think> </think>. To search, write "
        "<search> a few keywords </search>; the results come back inside <information> </information>. "
        f"You may search up to {max_turns} times. When you know the answer, write it inside "
        "<answer> </answer> and stop. Answer briefly, with the words of the sources."
    )


RAMP_INSTRUCTION = (
    f"Some spans of this paragraph were replaced with {MASK}. Search to find what each {MASK} stands "
    "for, then write the whole paragraph inside <answer> </answer> with every mask filled and "
    "everything else unchanged."
)


def ramp_question(masked_paragraph: str, title: str = "") -> str:
    """The question text of a RAMP task: the instruction, the page title (the way search
    results show titles, so the subject is named in one place), the paragraph with [mask]s."""
    head = f"Title: {title}\n" if title else ""
    return f"{RAMP_INSTRUCTION}\n\n{head}Paragraph: {masked_paragraph}"


def user_turn(question: str) -> str:
    """What the user says: a RAMP question as it is (it starts with its instruction), a QA
    question after "Question:". The label puts a space before the question's first word, so a
    query that repeats the question is the same tokens as the question here, first one too,
    and the copy head can follow it from the first token (docs/results.md)."""
    return question if question.startswith(RAMP_INSTRUCTION) else f"Question: {question}"


def task_messages(task: dict, max_turns: int = 4) -> list[dict]:
    """Chat messages for a QA or RAMP task record (the RAMP question already holds its paragraph)."""
    return [{"role": "system", "content": system_prompt(max_turns)},
            {"role": "user", "content": user_turn(task["question"])}]


@dataclass(frozen=True)
class Turn:
    """One parsed model turn: a search, an answer, or malformed (with the reason)."""

    kind: str  # "search" | "answer" | "malformed"
    thought: str = ""
    query: str = ""
    answer: str = ""
    reason: str = ""


def _inside(text: str, tag: str) -> list[str]:
    return re.findall(rf"<{tag}>(.*?)</{tag}>", text, flags=re.S)


def parse_turn(text) -> Turn:
    """Read one model turn (its text up to and including the first stop string)."""
    if not isinstance(text, str):
        return Turn("malformed", reason="not text")
    cuts = [text.find(s) + len(s) for s in STOP if s in text]
    end = min(cuts) if cuts else len(text)
    turn, rest = text[:end], text[end:]
    thoughts = _inside(turn, THINK)
    thought = " ".join(" ".join(t.split()) for t in thoughts)
    if "<information>" in turn or "</information>" in turn:
        return Turn("malformed", thought, reason="information tag written by the model")
    if not cuts:
        opened = any(f"<{t}>" in turn for t in (SEARCH, ANSWER)) or turn.count("<think>") > len(thoughts)
        return Turn("malformed", thought, reason="unclosed tag" if opened else "no tags")
    kind = SEARCH if turn.endswith("</search>") else ANSWER
    other = ANSWER if kind == SEARCH else SEARCH
    if f"<{other}>" in turn or f"</{other}>" in turn:
        return Turn("malformed", thought, reason="both search and answer")
    bodies = _inside(turn, kind)
    if turn.count(f"<{kind}>") != 1 or len(bodies) != 1:
        reason = "nested tags" if turn.count(f"<{kind}>") > 1 else "unclosed tag"
        return Turn("malformed", thought, reason=reason)
    body = " ".join(bodies[0].split())
    if _OUR_TAG.search(body):
        return Turn("malformed", thought, reason="nested tags")
    if kind == SEARCH:
        if not body:
            return Turn("malformed", thought, reason="empty query")
        return Turn(SEARCH, thought, query=body[:MAX_QUERY_CHARS])
    if not body:
        return Turn("malformed", thought, reason="empty answer")
    if rest.strip():
        return Turn("malformed", thought, answer=body, reason="text after answer")
    return Turn(ANSWER, thought, answer=body)


def turn_end(turn: Turn, searches: int, max_turns: int | None) -> str:
    """How a trajectory ends at this model turn, or "" when it goes on to search: the stop
    conditions of every turn loop (rollouts, teachers), stated once. A loop that counts tokens
    adds its own end, "length", when the budget runs out; `max_turns` None: no turn limit.

    >>> turn_end(parse_turn("<search> x </search>"), 0, 4), turn_end(parse_turn("<search> x </search>"), 4, 4)
    ('', 'max_turns')
    """
    if turn.kind == ANSWER:
        return "answer"
    if turn.kind == "malformed":
        return f"malformed: {turn.reason}"
    return "max_turns" if max_turns is not None and searches >= max_turns else ""


def split_context(text: str) -> tuple[list[str], list[str]]:
    """Everything after the prompt, as (model turns, <information> blocks between them): what a
    reader of the context (a teacher, a text reward) sees of the turns so far.

    >>> split_context("<search> a </search>\\n<information>Doc 1 x</information>\\n<answer> b </answer>")
    (['<search> a </search>', '<answer> b </answer>'], ['<information>Doc 1 x</information>'])
    """
    blocks = [m.group(1) for m in _INFORMATION_TURN.finditer(text)]
    return _INFORMATION_TURN.split(text)[::2], blocks


def write_turn(kind: str, body: str, thought: str = "") -> str:
    """A model turn as teachers write it: `<think>thought</think><search> body </search>`.

    The spaces inside the tags are deliberate: byte-level BPE spells a word after a space
    with other tokens than the same word after a tag, so `<search> Ostrivel` repeats the
    tokens of `... in Ostrivel` and copying a name needs no re-spelling (the tiny model
    could copy all but the first token of names written `<search>Ostrivel`).

    >>> write_turn("search", "Ostrivel", "Look it up.")
    '<think>Look it up.</think><search> Ostrivel </search>'
    """
    if kind not in (SEARCH, ANSWER):
        raise ValueError(f"a model turn ends with a search or an answer, not {kind!r}")
    think = f"<think>{thought}</think>" if thought else ""
    return f"{think}<{kind}> {body} </{kind}>"


def neutralise(text: str) -> str:
    """Passage text can never open or close a protocol tag: `<search>` becomes `&lt;search>`."""
    return _OUR_TAG.sub(lambda m: "&lt;" + m.group(1) + m.group(2), text)


def format_information(hits, max_words: int = 120) -> str:
    """The environment's block of results; each passage cut to `max_words` words.

    >>> from minisearch.search.hit import Hit
    >>> print(format_information([Hit("p1", "Ostrivel", "A city on the <answer> river.", 1.0)]))
    <information>Doc 1 (Title: Ostrivel) A city on the &lt;answer> river.</information>
    """
    lines = []
    for i, hit in enumerate(hits, start=1):
        title = hit["title"] if isinstance(hit, dict) else hit.title
        body = hit["text"] if isinstance(hit, dict) else hit.text
        words = str(body).split()
        body = " ".join(words[:max_words]) + (" ..." if len(words) > max_words else "")
        lines.append(f"Doc {i} (Title: {neutralise(' '.join(str(title).split()))}) {neutralise(body)}")
    return "<information>" + ("\n".join(lines) or "No results.") + "</information>"


def information_turn(hits, max_words: int = 120) -> str:
    """The tool's whole turn in a trajectory: the results block on a line of its own."""
    return "\n" + format_information(hits, max_words) + "\n"
