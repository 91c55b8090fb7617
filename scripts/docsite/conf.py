# Sphinx configuration for the collection docs site that `make docs` builds (scripts/docs.sh).
# Offline on purpose: intersphinx reads only the local inventory scripts/docs.sh writes
# (offline_inventory.py) and never fetches one, so the build needs no network.
project = 'stackops.runbooks'
copyright = 'stackops maintainers'
title = 'stackops.runbooks collection documentation'
html_short_title = 'stackops.runbooks'

extensions = ['sphinx.ext.intersphinx', 'sphinx_antsibull_ext']
intersphinx_mapping = {
    'ansible': ('https://docs.ansible.com/projects/ansible/latest/', ('../ansible.inv',)),
}
intersphinx_disabled_reftypes = []
intersphinx_timeout = 1

pygments_style = 'ansible'
highlight_language = 'YAML+Jinja'

html_theme = 'sphinx_ansible_theme'
html_show_sphinx = False
html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False
html_theme_options = {'display_version': False}

default_role = 'any'
nitpicky = True
