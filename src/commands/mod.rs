//! One module per command.

mod backfill;
mod bench;
mod bench_backfill;
mod bench_pipeline;
mod bench_recommend;
mod bench_serve;
mod common;
mod datasets;
mod learn;
mod live_tail;
mod quickstart;
mod quickstart_features;
mod quickstart_serving;
mod registry;
mod run;
mod run_serving;
mod serve;
mod topics;
mod train;

use crate::cli::{
    BenchCommand, Cli, Command, DatasetsCommand, GenerateCommand, RegistryCommand, TrainCommand,
};
use crate::context::Context;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Topics(cmd) => topics::run(&cli.global, cmd),
        Command::Registry(RegistryCommand::Serve { listen, topic }) => {
            registry::serve(Context::open(&cli.global)?, listen, &topic)
        }
        Command::Quickstart(args) => quickstart::run(&cli.global, &args),
        Command::Run(args) => run::run(&cli.global, &args),
        Command::Validate(args) => run::validate(&cli.global, &args),
        Command::Backfill(args) => backfill::backfill(&cli.global, &args),
        Command::Consistency(args) => backfill::consistency(&cli.global, &args),
        Command::Learn(args) => learn::learn(&args),
        Command::Train(TrainCommand::Batch(args)) => train::batch(&args),
        Command::Serve(args) => serve::serve(&cli.global, &args),
        Command::Datasets(DatasetsCommand::Generate(GenerateCommand::Clickstream(args))) => {
            datasets::generate_clickstream(&cli.global, &args)
        }
        Command::Evaluate(args) => serve::evaluate(&cli.global, &args),
        Command::Bench(BenchCommand::Topics(args)) => bench::topics(&cli.global, &args),
        Command::Bench(BenchCommand::Pipeline(args)) => {
            bench_pipeline::pipeline(&cli.global, &args)
        }
        Command::Bench(BenchCommand::Recommend(args)) => bench_recommend::recommend(&args),
        Command::Bench(BenchCommand::Serve(args)) => bench_serve::serve_bench(&cli.global, &args),
        Command::Bench(BenchCommand::Backfill(args)) => {
            bench_backfill::backfill_bench(&cli.global, &args)
        }
    }
}
