"""vvkit."""
