"""The portal's date and number formats (`FORMAT_MODULE_PATH`), used instead of the
locale's own: Django applies the locale's formats over the DATE_FORMAT settings."""
