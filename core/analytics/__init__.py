"""Cancellation and survey analytics (shared query parts, figures, the roll-ups that keep them
fast, the CLI's figures) and the no-show risk: its model, scores, jobs and the front desk's call
list. The figures only read; the roll-ups, the risk model and scores and the recorded calls are
written here."""
