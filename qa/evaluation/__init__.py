"""Built-in evaluation and self-tuning (``qa eval``, ``qa tune``, ``qa questions``).

>>> from qa import Assistant                                   # doctest: +SKIP
>>> from qa.evaluation import evaluate, read_questions, tune   # doctest: +SKIP
>>> assistant = Assistant.load("index")                        # doctest: +SKIP
>>> report = evaluate(assistant, read_questions("questions.jsonl"), k=10)   # doctest: +SKIP
>>> report.retrieval["hybrid"].metrics["mrr@10"]               # doctest: +SKIP

See ``docs/evaluation.md`` for the question format, the metrics and the tuning rule.
"""
from .drafts import draft_questions
from .metrics import metric_names
from .pipeline import RETRIEVAL_KEYS
from .pool import load_pool, pool_assistant, pool_index_dir, remap_gold
from .questions import (Question, QuestionFileError, TooFewQuestionsError, load_questions, read_questions,
                        split_halves, write_questions)
from .runner import AnswerScores, EvalReport, QuestionResult, ReaderOnlyScores, RetrieverScores, evaluate
from .tune import MIN_QUESTIONS, SearchSpace, TuneReport, tune

__all__ = [
    "AnswerScores", "EvalReport", "MIN_QUESTIONS", "Question", "QuestionFileError", "QuestionResult",
    "RETRIEVAL_KEYS", "ReaderOnlyScores", "RetrieverScores", "SearchSpace", "TooFewQuestionsError", "TuneReport",
    "draft_questions", "evaluate", "load_pool", "load_questions", "metric_names", "pool_assistant", "pool_index_dir",
    "read_questions", "remap_gold", "split_halves", "tune", "write_questions",
]
