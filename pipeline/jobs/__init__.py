"""The jobs behind the commands: run, train, backtest, score, monitor and the tier study. Each turns a config and
the loaded transactions into results; the CLI prints them."""
