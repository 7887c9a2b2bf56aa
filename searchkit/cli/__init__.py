"""The searchkit command line: glue over the library, no search logic of its own."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated

import typer

from searchkit.cli.corpus import (
    CorpusArg,
    ExcludeOpt,
    FieldsOpt,
    FormatOpt,
    IncludeOpt,
    TextFieldOpt,
    TitleFieldOpt,
    corpus_options,
)
from searchkit.cli.errors import reported_errors
from searchkit.cli.options import (
    DatasetOpt,
    DepthOpt,
    EfSearchOpt,
    EncodingOpt,
    EpochsOpt,
    EvalSplitOpt,
    HeldoutOpt,
    IndexArg,
    IndexOpt,
    JsonOpt,
    LexicalOpt,
    MaxLengthOpt,
    ModeOpt,
    NegativesOpt,
    NprobeOpt,
    OutOpt,
    PairsOpt,
    PrecisionOpt,
    QueryRuntimeOpt,
    RerankerRuntimeOpt,
    RerankTokensOpt,
    RescoreOpt,
    RuntimeOpt,
    SpladeOpt,
    TrainSplitOpt,
    WhereOpt,
    with_search_options,
)
from searchkit.defaults import (
    DEFAULT_CANDIDATES,
    DEFAULT_K,
    DEFAULT_LEXICAL,
    DEFAULT_SPLADE,
)
from searchkit.inference.catalog import default_encoder
from searchkit.options import SearchOptions

app = typer.Typer(
    help="Two-stage semantic search: index a JSONL corpus, then query it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Log what searchkit does (e.g. whether a model runs torch-free, and why not) "
            "and let other libraries' progress bars and warnings through.",
        ),
    ] = False,
) -> None:
    if verbose:
        from searchkit.progress import log_verbose

        log_verbose()


MergePolicyOpt = Annotated[
    str | None,
    typer.Option(
        "--merge-policy",
        help="Merging of small segments after each commit: tiered or none (only compact) "
        "(default: tiered); recorded in the index (on add: for this add only).",
    ),
]
SegmentsPerTierOpt = Annotated[
    int | None, typer.Option(help="Tiered merging: segments a tier holds before merging [2].")
]
MaxMergeAtOnceOpt = Annotated[
    int | None,
    typer.Option(help="Tiered merging: segments merged at once, and the size ratio of tiers [4]."),
]
FloorDocsOpt = Annotated[
    int | None, typer.Option(help="Tiered merging: smaller segments count as this size [4].")
]


def _merge_policy(kind: str | None, **knobs: int | None) -> object:
    """The ``MergePolicy`` of the merge flags (None: none given, the index's or the default)."""
    from searchkit.index.merge import MergePolicy

    given = {k: v for k, v in {"kind": kind, **knobs}.items() if v is not None}
    return MergePolicy(**given) if given else None


@app.command()
def index(
    corpus: CorpusArg,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Index folder (default: indexes/<corpus name>)."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Bi-encoder: local folder or hub name (default: by language, "
            f"{default_encoder('en')} for English, {default_encoder('zh')} otherwise)."
        ),
    ] = None,
    reranker: Annotated[
        str | None,
        typer.Option(help="Default reranker recorded in the index (default: by language)."),
    ] = None,
    language: Annotated[
        str,
        typer.Option(
            help="Corpus language: auto (detected from its first documents), en, zh or cjk "
            "(Japanese, Korean); picks the BM25 analyzer and the default models."
        ),
    ] = "auto",
    user_dict: Annotated[
        Path | None,
        typer.Option(
            help="Chinese user dictionary of domain words kept whole, such as product names "
            "(jieba format: a word a line, optionally its frequency and tag); copied into the "
            "index."
        ),
    ] = None,
    t2s: Annotated[
        bool,
        typer.Option(help="Chinese: fold Traditional characters to Simplified (臺灣 finds 台湾)."),
    ] = True,
    backend: Annotated[
        str, typer.Option(help="Vector backend: faiss, hnswlib or exact.")
    ] = "faiss",
    kind: Annotated[
        str | None,
        typer.Option(
            help="flat, hnsw, ivf; compact vectors (faiss): sq8, binary, binary-hnsw "
            "(default: faiss flat, hnswlib hnsw)."
        ),
    ] = None,
    m: Annotated[int | None, typer.Option("--m", help="HNSW links per node [32].")] = None,
    ef_construction: Annotated[int | None, typer.Option(help="HNSW build breadth [200].")] = None,
    ef_search: EfSearchOpt = None,
    nlist: Annotated[
        int | None, typer.Option(help="IVF lists (default: about 4*sqrt(docs)).")
    ] = None,
    nprobe: NprobeOpt = None,
    lexical: Annotated[
        str | None,
        typer.Option(
            help="Lexical first stage stored in the index: bm25, splade (not with --ray) or "
            "none (default: bm25)."
        ),
    ] = None,
    splade_model: SpladeOpt = DEFAULT_SPLADE,
    rescore: RescoreOpt = None,
    format: FormatOpt = None,
    id_field: Annotated[str | None, typer.Option(help="Id field [_id, else id].")] = None,
    text_field: TextFieldOpt = None,
    title_field: TitleFieldOpt = None,
    fields: FieldsOpt = None,
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    skip_invalid: Annotated[
        bool, typer.Option(help="Skip bad lines and report them instead of failing.")
    ] = False,
    encoding: EncodingOpt = "utf-8",
    batch_size: Annotated[int, typer.Option(help="Texts per encoder batch.")] = 32,
    runtime: RuntimeOpt = None,
    precision: PrecisionOpt = None,
    chunk: Annotated[
        bool,
        typer.Option(
            help="Split documents longer than the encoder reads into overlapping passages; "
            "--no-chunk embeds their start and counts them as truncated."
        ),
    ] = True,
    chunk_tokens: Annotated[
        int | None, typer.Option(help="Tokens per passage (default: all the encoder reads).")
    ] = None,
    chunk_overlap: Annotated[
        int | None, typer.Option(help="Tokens shared by consecutive passages [32].")
    ] = None,
    merge_policy: MergePolicyOpt = None,
    segments_per_tier: SegmentsPerTierOpt = None,
    max_merge_at_once: MaxMergeAtOnceOpt = None,
    floor_docs: FloorDocsOpt = None,
    force: Annotated[bool, typer.Option(help="Replace an existing index.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray", help="Ingest on a Ray cluster: auto, local or ray://host:port (sharded)."
        ),
    ] = None,
    shards: Annotated[int | None, typer.Option(help="Shards to write (with --ray) [1].")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Embedding actors (with --ray; default: one per CPU).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Build an index from a corpus, e.g. searchkit index corpus.jsonl --backend hnswlib"""
    from searchkit.errors import InvalidParameter
    from searchkit.ingest.build import build_index
    from searchkit.ingest.readers import read_corpus
    from searchkit.report import print_build

    reading = corpus_options(format, text_field, title_field, fields, include, exclude)

    params = {
        "m": m,
        "ef_construction": ef_construction,
        "ef_search": ef_search,
        "nlist": nlist,
        "nprobe": nprobe,
        "rescore": rescore,
    }
    with reported_errors():
        if ray is not None:
            from searchkit.distributed.ingest import ingest

            if given := [k for k, v in reading.items() if (k, v) != ("format", "jsonl")]:
                raise InvalidParameter(
                    "the Ray ingest reads JSONL as it is: build without --ray to read other "
                    "formats or map columns", param=given[0],
                )  # fmt: skip
            build = functools.partial(
                ingest, shards=shards or 1, address=ray, workers=workers,
                id_field=id_field, skip_invalid=skip_invalid, encoding=encoding,
            )  # fmt: skip
        elif (shards, workers) != (None, None):
            raise InvalidParameter("--shards and --workers need --ray ADDRESS")
        else:
            policy = _merge_policy(
                merge_policy, segments_per_tier=segments_per_tier,
                max_merge_at_once=max_merge_at_once, floor_docs=floor_docs,
            )  # fmt: skip
            build = functools.partial(build_index, splade_model=splade_model, merge_policy=policy)
            corpus = read_corpus(
                corpus, **reading, id_field=id_field, skip_invalid=skip_invalid, encoding=encoding
            )
        report = build(
            corpus, out, model=model, reranker=reranker, language=language, backend=backend,
            kind=kind, params=params, lexical=lexical or DEFAULT_LEXICAL,
            chunk=chunk, chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap,
            user_dict=user_dict, t2s=t2s, batch_size=batch_size,
            runtime=runtime, precision=precision, force=force, progress=progress,
        )  # fmt: skip
    print_build(report, as_json=as_json)


@app.command()
@with_search_options
def query(
    text: Annotated[str, typer.Argument(help="The query.")],
    index: IndexOpt = None,
    k: Annotated[int, typer.Option("-k", "--k", help="Hits to return.")] = DEFAULT_K,
    reranker: Annotated[
        str | None, typer.Option(help="CrossEncoder folder or hub name (default: the index's).")
    ] = None,
    where: WhereOpt = None,
    query_runtime: QueryRuntimeOpt = None,
    reranker_runtime: RerankerRuntimeOpt = None,
    rerank_max_tokens: RerankTokensOpt = None,
    verify: Annotated[bool, typer.Option(help="Check file checksums on open.")] = True,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="Search a sharded index's shards with Ray actors: auto or ray://host:port.",
        ),
    ] = None,
    as_json: JsonOpt = False,
    *,
    options: SearchOptions,
) -> None:
    """Search an index, e.g. searchkit query "how do vaccines work" -k 5 --where 'year >= 2020'"""
    from searchkit.cli.io import locate_index
    from searchkit.query.searcher import Searcher
    from searchkit.report import print_hits

    with reported_errors():
        path, why = locate_index(index)
        if why != "given":
            typer.echo(f"using index {path} ({why})", err=True)
        searcher = Searcher.open(
            path, reranker=reranker, verify=verify, ray_address=ray,
            query_runtime=query_runtime, reranker_runtime=reranker_runtime,
            rerank_max_tokens=rerank_max_tokens,
        )  # fmt: skip
        hits = searcher.search(text, k, where=where, options=options)
    print_hits(path, hits, searcher.reranker.name, as_json=as_json)


@app.command()
def shell(
    index: Annotated[
        Path | None, typer.Argument(help="Index folder (default: as for query).")
    ] = None,
    reranker: Annotated[
        str | None, typer.Option(help="CrossEncoder folder or hub name (default: the index's).")
    ] = None,
    query_runtime: QueryRuntimeOpt = None,
    reranker_runtime: RerankerRuntimeOpt = None,
    verify: Annotated[bool, typer.Option(help="Check file checksums on open.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Query an index interactively with the models kept loaded: type queries, :k 5,
    :mode dense, :where 'year >= 2020', :rerank off, :help, :quit (stdin may be piped)."""
    from searchkit.cli.io import locate_index
    from searchkit.cli.shell import run_shell
    from searchkit.query.searcher import Searcher

    with reported_errors():
        path, why = locate_index(index)
        if why != "given":
            typer.echo(f"using index {path} ({why})", err=True)
        searcher = Searcher.open(
            path, reranker=reranker, verify=verify,
            query_runtime=query_runtime, reranker_runtime=reranker_runtime,
        )  # fmt: skip
        run_shell(path, searcher, as_json=as_json)


@app.command("eval")
@with_search_options
def eval_(
    index: Annotated[
        Path | None, typer.Argument(help="Index folder (default: built from --dataset).")
    ] = None,
    dataset: Annotated[Path | None, typer.Option(help="BEIR dataset folder.")] = None,
    split: Annotated[
        str, typer.Option(help="qrels split of --dataset; with --suite: test or tune.")
    ] = "test",
    suite: Annotated[
        Path | None,
        typer.Option(
            help="Suite TOML of datasets (e.g. benchmarks/suite.toml): dense, lexical and each "
            "fusion on every dataset, with their mean and worst case."
        ),
    ] = None,
    queries: Annotated[Path | None, typer.Option(help="queries.jsonl (with INDEX).")] = None,
    qrels: Annotated[Path | None, typer.Option(help="qrels TSV (with INDEX).")] = None,
    encoding: EncodingOpt = "utf-8",
    reranker: Annotated[
        str | None, typer.Option(help="CrossEncoder (default: the index's).")
    ] = None,
    where: WhereOpt = None,
    model: Annotated[
        str | None,
        typer.Option(help="Bi-encoder, if the index is built (default: by language)."),
    ] = None,
    language: Annotated[
        str,
        typer.Option(help="Corpus language, if the index is built: auto, en, zh or cjk."),
    ] = "auto",
    backend: Annotated[str, typer.Option(help="Backend, if the index is built.")] = "faiss",
    lexical: LexicalOpt = DEFAULT_LEXICAL,
    runtime: RuntimeOpt = None,
    precision: PrecisionOpt = None,
    query_runtime: QueryRuntimeOpt = None,
    reranker_runtime: RerankerRuntimeOpt = None,
    rerank_max_tokens: RerankTokensOpt = None,
    force: Annotated[bool, typer.Option(help="Rebuild the dataset's index.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars on stderr.")] = True,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the result here.")
    ] = None,
    *,
    options: SearchOptions,
) -> None:
    """Measure nDCG@10, MRR@10, Recall@10/100, MAP@100 and latency on judged queries,
    e.g. searchkit eval --dataset ../shared/data/beir/scifact --split test --mode hybrid"""
    from searchkit.eval.evaluate import evaluate, prepare
    from searchkit.report import print_eval

    if suite is not None:
        from searchkit.eval.suite import default_settings, load_suite, run_suite
        from searchkit.report import print_suite

        with reported_errors():
            found = run_suite(
                load_suite(suite), default_settings(options), role=split, progress=progress,
                query_runtime=query_runtime,
            )  # fmt: skip
        print_suite(found)
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(found.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return
    build = {
        "model": model, "language": language, "backend": backend, "lexical": lexical,
        "runtime": runtime,
        "precision": precision, "force": force, "progress": progress,
    }  # fmt: skip
    if reranker is not None:
        build["reranker"] = reranker
    with reported_errors():
        path, data = prepare(
            index, dataset=dataset, split=split, queries=queries, qrels=qrels,
            encoding=encoding, **build,
        )  # fmt: skip
        result = evaluate(
            path, data, options=options, where=where, reranker=reranker, progress=progress,
            query_runtime=query_runtime, reranker_runtime=reranker_runtime,
            rerank_max_tokens=rerank_max_tokens,
        )  # fmt: skip
    print_eval(result)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.to_dict(), indent=2) + "\n")


@app.command()
def info(
    index: Annotated[
        Path | None, typer.Argument(help="Index folder (default: as for query).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show what is in an index: documents, models, backend, files."""
    from searchkit.cli.io import locate_index
    from searchkit.index.sharded import read_manifest
    from searchkit.report import print_manifest

    with reported_errors():
        path, _ = locate_index(index)
        manifest = read_manifest(path)  # a sharded index's parent manifest too
    print_manifest(path, manifest, as_json=as_json)


@app.command()
def add(
    index: IndexArg,
    corpus: CorpusArg,
    format: FormatOpt = None,
    id_field: Annotated[str | None, typer.Option(help="Id field [_id, else id].")] = None,
    text_field: TextFieldOpt = None,
    title_field: TitleFieldOpt = None,
    fields: FieldsOpt = None,
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    skip_invalid: Annotated[
        bool, typer.Option(help="Skip bad lines instead of failing the whole add.")
    ] = False,
    encoding: EncodingOpt = "utf-8",
    batch_size: Annotated[int, typer.Option(help="Texts per encoder batch.")] = 32,
    merge_policy: MergePolicyOpt = None,
    segments_per_tier: SegmentsPerTierOpt = None,
    max_merge_at_once: MaxMergeAtOnceOpt = None,
    floor_docs: FloorDocsOpt = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Upsert documents: new ids are added, changed ones replaced, unchanged ones kept (a
    folder: only changed files are embedded again), e.g. searchkit add indexes/docs new.jsonl"""
    from searchkit.ingest.readers import read_corpus
    from searchkit.ingest.writer import IndexWriter
    from searchkit.report import print_commit

    reading = corpus_options(format, text_field, title_field, fields, include, exclude)
    with reported_errors():
        source = read_corpus(
            corpus, **reading, id_field=id_field, skip_invalid=skip_invalid, encoding=encoding
        )
        policy = _merge_policy(
            merge_policy, segments_per_tier=segments_per_tier,
            max_merge_at_once=max_merge_at_once, floor_docs=floor_docs,
        )  # fmt: skip
        with IndexWriter.open(
            index, batch_size=batch_size, progress=progress, merge_policy=policy
        ) as writer:
            report = writer.add_corpus(source)
    print_commit(report, as_json=as_json)


@app.command()
def delete(
    index: IndexArg,
    ids: Annotated[str | None, typer.Option(help="Comma-separated ids, e.g. a17,b42.")] = None,
    ids_file: Annotated[Path | None, typer.Option(help="A file of ids, one per line.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete documents by id, e.g. searchkit delete indexes/docs --ids a17,b42"""
    from searchkit.cli.io import read_ids
    from searchkit.ingest.writer import IndexWriter
    from searchkit.report import print_commit

    with reported_errors():
        wanted = read_ids(ids, ids_file)
        with IndexWriter.open(index) as writer:
            report = writer.delete(wanted)
    print_commit(report, as_json=as_json)


@app.command()
def compact(index: IndexArg, as_json: JsonOpt = False) -> None:
    """Rewrite the index without deleted documents (no re-embedding), e.g. after many deletes."""
    from searchkit.ingest.writer import IndexWriter
    from searchkit.report import print_commit

    with reported_errors(), IndexWriter.open(index) as writer:
        report = writer.compact()
    print_commit(report, as_json=as_json)


@app.command()
def verify(index: IndexArg, as_json: JsonOpt = False) -> None:
    """Re-check every file's checksum and the docstore/vector counts of an index."""
    from searchkit.query.searcher import verify_index
    from searchkit.report import print_verified

    with reported_errors():
        manifest = verify_index(index)
    print_verified(index, manifest, as_json=as_json)


@app.command()
def serve(
    index: Annotated[
        Path, typer.Argument(help="Index folder, or a folder of index folders (all served).")
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="SEARCHKIT_API_KEY",
            show_envvar=True,
            show_default=False,
            help="Admin key (everything); set the variable to keep it out of ps.",
        ),
    ] = None,
    search_key: Annotated[
        str | None,
        typer.Option(
            envvar="SEARCHKIT_SEARCH_KEY",
            show_envvar=True,
            show_default=False,
            help="Read-only key: search, info and the index list.",
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow a non-loopback --host without --api-key.")
    ] = False,
    reranker: Annotated[
        str | None, typer.Option(help="CrossEncoder folder or hub name (default: the index's).")
    ] = None,
    batch_window_ms: Annotated[
        float | None,
        typer.Option(help="Micro-batch concurrent queries for up to this long; 0 disables [5]."),
    ] = None,
    max_batch: Annotated[int | None, typer.Option(help="Queries per micro-batch [32].")] = None,
    max_k: Annotated[int | None, typer.Option(help="Largest k a request may ask [100].")] = None,
    max_candidates: Annotated[
        int | None, typer.Option(help="Largest candidates a request may ask [200].")
    ] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option(help="Largest request body, else 413 [1 MiB].")
    ] = None,
    refresh_seconds: Annotated[
        float | None, typer.Option(help="Look for other writers' commits this often; 0: never [2].")
    ] = None,
    max_queued: Annotated[
        int | None, typer.Option(help="Searches of one kind (rerank or not) queued, else 503 [64].")
    ] = None,
    deadline_seconds: Annotated[
        float | None, typer.Option(help="A search not started by then gets 503 [5].")
    ] = None,
    query_runtime: QueryRuntimeOpt = None,
    reranker_runtime: RerankerRuntimeOpt = None,
    verify: Annotated[bool, typer.Option(help="Check file checksums on open.")] = True,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = True,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve an index, or every index in a folder, over HTTP: search, upsert, delete, metrics
    and a search page at / (API docs at /docs), e.g. searchkit serve indexes --port 8000"""
    with reported_errors():
        from searchkit.serve.app import create_app, run
        from searchkit.serve.auth import Keys, check_bind
        from searchkit.serve.service import ServerConfig

        keys = Keys(api_key, search_key)
        check_bind(host, keys, insecure=insecure)
        config = ServerConfig.from_options(
            batch_window_ms=batch_window_ms, max_batch=max_batch, max_k=max_k,
            max_candidates=max_candidates, max_body_bytes=max_body_bytes,
            refresh_seconds=refresh_seconds, max_queued=max_queued,
            deadline_seconds=deadline_seconds,
        )  # fmt: skip
        app = create_app(
            index, config=config, keys=keys, reranker=reranker, verify=verify,
            query_runtime=query_runtime, reranker_runtime=reranker_runtime,
        )  # fmt: skip
    run(app, host=host, port=port, log_level=log_level, access_log=access_log)


SaveStepsOpt = Annotated[
    int | None,
    typer.Option(help="Checkpoint every N optimizer steps (default: every epoch), for --resume."),
]
ResumeOpt = Annotated[
    bool, typer.Option(help="Continue a stopped run from its last checkpoint (same options).")
]


@app.command("train-reranker")
def train_reranker(
    index: IndexArg,
    out: OutOpt,
    dataset: DatasetOpt = None,
    split: TrainSplitOpt = "train",
    eval_split: EvalSplitOpt = None,
    queries: Annotated[Path | None, typer.Option(help="queries.jsonl (with --qrels).")] = None,
    qrels: Annotated[Path | None, typer.Option(help="qrels TSV (with --queries).")] = None,
    pairs: PairsOpt = None,
    base: Annotated[
        str | None,
        typer.Option(help="CrossEncoder (or bi-encoder) to start from (default: the index's)."),
    ] = None,
    heldout: HeldoutOpt = 0.1,
    negatives: NegativesOpt = 3,
    depth: DepthOpt = 50,
    in_batch: Annotated[int, typer.Option(help="Other rows' passages added as negatives.")] = 3,
    mode: ModeOpt = None,
    epochs: EpochsOpt = 1.0,
    batch_size: Annotated[int, typer.Option(help="Queries per training step.")] = 4,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 5e-5,
    max_length: MaxLengthOpt = 256,
    candidates: Annotated[
        int, typer.Option("--candidates", "-c", help="Hits reranked to measure nDCG@10.")
    ] = DEFAULT_CANDIDATES,
    seed: Annotated[int, typer.Option(help="Seed of the split, sampling and training.")] = 0,
    save_steps: SaveStepsOpt = None,
    resume: ResumeOpt = False,
    force: Annotated[bool, typer.Option(help="Replace an existing --out folder.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars on stderr.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune a CrossEncoder on relevance data with hard negatives mined from INDEX; use it
    with --reranker OUT, e.g. searchkit train-reranker indexes/scifact -o models/rr
    --dataset ../shared/data/beir/scifact"""
    from searchkit.report import print_training
    from searchkit.training.data import load_training_data
    from searchkit.training.reranker import train_reranker as train

    with reported_errors():
        data, held = load_training_data(
            dataset=dataset, split=split, eval_split=eval_split, queries=queries, qrels=qrels,
            pairs=pairs,
        )  # fmt: skip
        report = train(
            index, data, out, base=base, eval_queries=held, heldout=heldout, negatives=negatives,
            depth=depth, in_batch=in_batch, mode=mode, epochs=epochs, batch_size=batch_size,
            lr=lr, max_length=max_length, candidates=candidates, seed=seed,
            save_steps=save_steps, resume=resume, force=force, progress=progress,
        )  # fmt: skip
    print_training(report, as_json=as_json)


@app.command("train-embedder")
def train_embedder(
    index: IndexArg,
    out: OutOpt,
    dataset: DatasetOpt = None,
    split: TrainSplitOpt = "train",
    eval_split: EvalSplitOpt = None,
    queries: Annotated[Path | None, typer.Option(help="queries.jsonl (with --qrels).")] = None,
    qrels: Annotated[Path | None, typer.Option(help="qrels TSV (with --queries).")] = None,
    pairs: PairsOpt = None,
    base: Annotated[
        str | None, typer.Option(help="Bi-encoder to start from (default: the index's).")
    ] = None,
    reindex: Annotated[
        Path | None,
        typer.Option(help="Then re-embed INDEX with the new model into this new index folder."),
    ] = None,
    heldout: HeldoutOpt = 0.1,
    negatives: NegativesOpt = 1,
    depth: DepthOpt = 50,
    mode: ModeOpt = None,
    epochs: EpochsOpt = 1.0,
    batch_size: Annotated[int, typer.Option(help="Rows per step (in-batch negatives).")] = 16,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 2e-5,
    max_length: MaxLengthOpt = 256,
    seed: Annotated[int, typer.Option(help="Seed of the split, sampling and training.")] = 0,
    save_steps: SaveStepsOpt = None,
    resume: ResumeOpt = False,
    force: Annotated[
        bool, typer.Option(help="Replace existing --out / --reindex folders.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars on stderr.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune the bi-encoder on relevance data with hard negatives mined from INDEX, then
    optionally re-embed INDEX into a new folder, e.g. searchkit train-embedder indexes/scifact
    -o models/emb --dataset ../shared/data/beir/scifact --reindex indexes/scifact-emb"""
    from searchkit.report import print_training
    from searchkit.training.data import load_training_data
    from searchkit.training.embedder import train_embedder as train

    with reported_errors():
        data, held = load_training_data(
            dataset=dataset, split=split, eval_split=eval_split, queries=queries, qrels=qrels,
            pairs=pairs,
        )  # fmt: skip
        report = train(
            index, data, out, base=base, eval_queries=held, heldout=heldout, negatives=negatives,
            depth=depth, mode=mode, epochs=epochs, batch_size=batch_size, lr=lr,
            max_length=max_length, seed=seed, save_steps=save_steps, resume=resume, force=force,
            progress=progress, reindex=reindex,
        )  # fmt: skip
    print_training(report, as_json=as_json)
