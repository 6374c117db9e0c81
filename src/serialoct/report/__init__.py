"""Pictures and reports: projections, orthogonal views, contrast for display."""
