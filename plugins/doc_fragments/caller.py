# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """The option of module_utils.caller_words.option_variables_spec(): refusals in the caller's words."""

    DOCUMENTATION = r'''
options:
  option_variables:
    description:
      - For messages only. Maps an option of this module to the variable the caller sets it with, for example
        V(confirm) to V(stackops_restore_confirm). A refusal then names that variable
        (C(set stackops_restore_confirm=true)) instead of the option; options not in the map are named as themselves.
        The roles of this collection pass their inventory variables.
    type: dict
    default: {}
'''
