"""Text streamed token by token: whole UTF-8 characters only, stop strings trimmed.

A token is a run of bytes, not of characters: byte-level BPE splits a multi-byte character
(an emoji, an accented letter) across tokens, so decoding each token alone would send broken
characters. `Utf8StreamDecoder` keeps the bytes of an unfinished character until its last byte
arrives. A stop string may also arrive split across tokens ("\\nUs" + "er:"), so `StopFilter`
holds back any tail that could still become one, and the client never sees a stop string or
any part of it.
"""

from __future__ import annotations

import codecs
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace

from parrot_lm.data.tokenizer import Tokenizer
from parrot_lm.generation.decoding import iter_tokens
from parrot_lm.generation.params import SamplingParams
from parrot_lm.model import GPT


class Utf8StreamDecoder:
    """Token ids in, complete characters out; invalid bytes become U+FFFD, as in
    `Tokenizer.decode(..., errors="replace")`, so the pieces join to the same text."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed_bytes(self, data: bytes) -> str:
        """The characters these bytes complete."""
        return self._decoder.decode(data)

    def feed(self, token: int) -> str:
        """The characters this token completes ("" while a character is still unfinished)."""
        return self._decoder.decode(self.tokenizer.decode_bytes([token]))

    def flush(self) -> str:
        """At the end: an unfinished character left over becomes U+FFFD."""
        return self._decoder.decode(b"", final=True)


class StopFilter:
    """Passes text through until the first stop string, which is cut with everything after it.

    Text that could be the start of a stop string is held back until the next piece shows
    whether it is; `flush()` releases it when generation ends without a stop.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """The part of held + `text` that is safe to send now."""
        if self.stopped:
            return ""
        buf = self._held + text
        hits = [i for i in (buf.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            self._held = ""
            return buf[: min(hits)]
        keep = 0  # the longest tail of buf that is a proper prefix of some stop string
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(buf)), keep, -1):
                if buf.endswith(stop[:n]):
                    keep = n
                    break
        self._held = buf[len(buf) - keep :]
        return buf[: len(buf) - keep]

    def flush(self) -> str:
        """At the end: the held-back text, unless a stop string was found."""
        held, self._held = self._held, ""
        return "" if self.stopped else held


class TextStream:
    """The continuation of one prompt as text pieces, for streaming or collecting.

    Iterate once. Afterwards `finish_reason` is "stop" (end-of-text or a stop string) or
    "length" (params.max_new_tokens reached) and `completion_tokens` counts the tokens sampled.
    strip_leading_space drops whitespace before the first visible character (a chat reply
    after "Assistant:").

    `cancel()` (from any thread) ends the iteration after the token being sampled: then
    `cancelled` is True and `finish_reason` stays None.
    """

    def __init__(
        self,
        model: GPT,
        tokenizer: Tokenizer,
        prompt_ids: list[int],
        params: SamplingParams,
        strip_leading_space: bool = False,
    ) -> None:
        if not prompt_ids:
            raise ValueError("The prompt needs at least one token.")
        self.model = model
        self.tokenizer = tokenizer
        self.prompt_ids = prompt_ids
        self.params = params
        self.strip_leading_space = strip_leading_space
        self.seed = params.seed if params.seed is not None else secrets.randbits(63)
        self.finish_reason: str | None = None
        self.completion_tokens = 0
        self.first_token_s: float | None = None
        self.elapsed_s: float | None = None
        self._started = False
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Stop generating after the current token (thread-safe; the client has gone).

        A generator running in a worker thread cannot be closed from another thread, and a
        token that completes no visible text (a held-back stop prefix, leading whitespace)
        yields nothing to stop at, so the flag is checked inside the token loop.
        """
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        """Whether `cancel()` was called."""
        return self._cancel.is_set()

    @property
    def prompt_tokens(self) -> int:
        """How many tokens the prompt is."""
        return len(self.prompt_ids)

    def __iter__(self) -> Iterator[str]:
        if self._started:
            raise RuntimeError("A TextStream can be iterated once.")
        self._started = True
        return self._pieces()

    def _pieces(self) -> Iterator[str]:
        start = time.perf_counter()
        p = replace(self.params, seed=self.seed)
        tokens = iter_tokens(
            self.model,
            self.prompt_ids,
            p,
            eot_id=self.tokenizer.eot_token,
            vocab_limit=self.tokenizer.n_vocab,
        )
        decoder = Utf8StreamDecoder(self.tokenizer)
        stops = StopFilter(p.stop)
        leading = self.strip_leading_space
        try:
            for token in tokens:
                self.completion_tokens += 1
                if self.first_token_s is None:
                    self.first_token_s = time.perf_counter() - start
                piece = stops.feed(decoder.feed(token))
                if leading and piece:
                    piece = piece.lstrip()
                    leading = not piece
                if piece:
                    yield piece
                if stops.stopped:
                    self.finish_reason = "stop"
                    return
                if self._cancel.is_set():
                    return
            piece = stops.feed(decoder.flush())
            piece += stops.flush()
            if leading:
                piece = piece.lstrip()
            if piece:
                yield piece
            stopped_early = stops.stopped or self.completion_tokens < p.max_new_tokens
            self.finish_reason = "stop" if stopped_early else "length"
        finally:
            tokens.close()
            self.elapsed_s = time.perf_counter() - start

    def collect(self) -> str:
        """The whole continuation at once (what a non-streaming request returns)."""
        return "".join(self)
