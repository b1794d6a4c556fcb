"""The stakeholder report: one self-contained HTML (or Markdown) file per model and scoring."""
