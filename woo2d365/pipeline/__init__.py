"""The steps an order goes through: pull, validate, push; sync runs them under the run lock."""
