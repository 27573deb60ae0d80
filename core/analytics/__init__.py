"""Cancellation and survey analytics: shared query parts, figures, the roll-ups that keep them
fast, and the CLI's figures. Reads only; imports core.kernel.
"""
