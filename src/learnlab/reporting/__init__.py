"""Statistics over seeds, the comparison with published numbers, figures and the Markdown/HTML report."""
