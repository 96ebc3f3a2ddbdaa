#!/usr/bin/env python3
"""Export fitted scikit-learn models to Airlock's builtin JSON formats.

Airlock evaluates these formats inside the Worker, so a model needs no
separate serving infrastructure:

  sklearn-trees   random forests, extra trees, single decision trees and
                  gradient boosting (log-loss classifiers, squared-error
                  regressors)
  sklearn-linear  logistic regression, linear regression, ridge, lasso and
                  elastic net

Use it as a module:

    from sklearn_export import export
    body = export(fitted_estimator, ["amount", "age", ...])
    # {"format": "sklearn-trees", "model": {...}}: the "format" and "model"
    # of a builtin upstream

or from the command line, on a pickled estimator:

    python3 sklearn_export.py model.pkl [amount,age,...] > model.json

Feature names give the column order the model was trained on. Without them
the command line uses the estimator's `feature_names_in_`, which scikit-learn
records when the model was fitted on a pandas DataFrame.

Anything this module cannot reproduce exactly (multi-output models, other
losses, custom init estimators, ...) is refused with a ValueError rather than
exported approximately. Written against scikit-learn 1.2.
"""

import json
import pickle
import sys

import numpy as np
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Ridge,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

FOREST_CLASSIFIERS = (RandomForestClassifier, ExtraTreesClassifier)
FOREST_REGRESSORS = (RandomForestRegressor, ExtraTreesRegressor)
TREE_ESTIMATORS = (
    FOREST_CLASSIFIERS
    + FOREST_REGRESSORS
    + (DecisionTreeClassifier, DecisionTreeRegressor)
    + (GradientBoostingClassifier, GradientBoostingRegressor)
)
LINEAR_REGRESSORS = (LinearRegression, Ridge, Lasso, ElasticNet)
LINEAR_ESTIMATORS = (LogisticRegression,) + LINEAR_REGRESSORS


def export(estimator, feature_names):
    """Export any supported estimator as {"format": ..., "model": ...}."""
    if isinstance(estimator, TREE_ESTIMATORS):
        return {"format": "sklearn-trees", "model": export_trees(estimator, feature_names)}
    if isinstance(estimator, LINEAR_ESTIMATORS):
        return {"format": "sklearn-linear", "model": export_linear(estimator, feature_names)}
    raise ValueError(f"{type(estimator).__name__} is not supported; see the module docstring")


def export_trees(estimator, feature_names):
    """Export a tree ensemble or a single tree in the "sklearn-trees" format.

    The model's prediction is link(base + scale * combine(trees)), where each
    tree contributes the "value" of the leaf a row reaches. A row goes to the
    left child when float32(x[feature]) <= threshold: scikit-learn casts
    inputs to float32 but keeps thresholds in float64.
    """
    if not isinstance(estimator, TREE_ESTIMATORS):
        raise ValueError(f"{type(estimator).__name__} is not a supported tree model")
    features = _check_features(estimator, feature_names)
    name = type(estimator).__name__
    model = {"estimator": name, "features": features}

    if isinstance(estimator, GradientBoostingClassifier):
        if estimator.loss not in ("log_loss", "deviance"):
            raise ValueError(
                f"GradientBoostingClassifier with loss={estimator.loss!r} is not supported; "
                "only 'log_loss' is"
            )
        classes = estimator.classes_.tolist()
        binary = len(classes) == 2
        model.update(
            classes=classes,
            combine="sum",
            scale=float(estimator.learning_rate),
            base=_gb_init_raw_prediction(estimator),
            link="logistic" if binary else "softmax",
        )
        # estimators_ has one row per stage and one column per raw output: a
        # single column (the log-odds of classes[1]) for binary problems, one
        # per class otherwise.
        trees = []
        for stage in estimator.estimators_:
            for k, tree in enumerate(stage):
                exported = _tree(tree, normalise=False)
                if not binary:
                    exported = {"output": k, **exported}
                trees.append(exported)
        model["trees"] = trees
        return model

    if isinstance(estimator, GradientBoostingRegressor):
        if estimator.loss != "squared_error":
            raise ValueError(
                f"GradientBoostingRegressor with loss={estimator.loss!r} is not supported; "
                "only 'squared_error' is"
            )
        model.update(
            combine="sum",
            scale=float(estimator.learning_rate),
            base=_gb_init_raw_prediction(estimator),
            link="identity",
        )
        model["trees"] = [_tree(stage[0], normalise=False) for stage in estimator.estimators_]
        return model

    # Forests and single trees average their trees' predictions. A
    # classifier's trees predict class probabilities: scikit-learn 1.2 stores
    # (weighted) class counts per node and normalises them at prediction time,
    # so the export stores them normalised.
    classifier = isinstance(estimator, FOREST_CLASSIFIERS + (DecisionTreeClassifier,))
    if classifier:
        if estimator.n_outputs_ != 1:
            raise ValueError(f"multi-output {name} is not supported")
        model["classes"] = estimator.classes_.tolist()
    trees = estimator.estimators_ if hasattr(estimator, "estimators_") else [estimator]
    model.update(combine="mean", link="identity")
    model["trees"] = [_tree(tree, normalise=classifier) for tree in trees]
    return model


def export_linear(estimator, feature_names):
    """Export a linear model in the "sklearn-linear" format.

    Regressors predict x . coef + intercept. Binary logistic regression
    predicts P(classes[1]) = sigmoid(x . coef[0] + intercept[0]); with more
    classes the rows of coef give one score per class, turned into
    probabilities by a softmax ("multinomial") or by a sigmoid per class
    followed by normalisation to sum 1 ("ovr"), as scikit-learn does.
    """
    if not isinstance(estimator, LINEAR_ESTIMATORS):
        raise ValueError(f"{type(estimator).__name__} is not a supported linear model")
    features = _check_features(estimator, feature_names)
    name = type(estimator).__name__
    coef = np.asarray(estimator.coef_, dtype=np.float64)
    intercept = np.asarray(estimator.intercept_, dtype=np.float64)

    if isinstance(estimator, LINEAR_REGRESSORS):
        if coef.ndim != 1:
            raise ValueError(f"{name} fitted on several targets is not supported")
        return {
            "estimator": name,
            "features": features,
            "coef": coef.tolist(),
            "intercept": float(intercept),
        }

    classes = estimator.classes_.tolist()
    # The rule LogisticRegression.predict_proba uses in scikit-learn 1.2.
    multi_class = estimator.multi_class
    ovr = multi_class in ("ovr", "warn") or (
        multi_class == "auto" and (len(classes) <= 2 or estimator.solver == "liblinear")
    )
    model = {"estimator": name, "features": features, "classes": classes}
    if len(classes) == 2 and not ovr:
        # A binary model fitted as multinomial predicts softmax([-z, z]), which
        # is sigmoid(2z). Doubling is exact in floating point, so the export
        # keeps the binary form sigmoid(x . coef + intercept).
        coef, intercept = 2.0 * coef, 2.0 * intercept
    model["coef"] = coef.tolist()
    model["intercept"] = intercept.tolist()
    if len(classes) > 2:
        model["multiClass"] = "ovr" if ovr else "multinomial"
    return model


def _check_features(estimator, feature_names):
    """Validate the feature names against what the estimator was fitted on."""
    names = [str(name) for name in feature_names]
    expected = getattr(estimator, "n_features_in_", None)
    if expected is None:
        raise ValueError("the estimator is not fitted")
    if len(names) != expected:
        raise ValueError(f"the model takes {expected} features but {len(names)} names were given")
    if len(set(names)) != len(names):
        raise ValueError("feature names must be unique")
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is not None and [str(name) for name in fitted] != names:
        raise ValueError(
            "the feature names differ from feature_names_in_ (the training column order)"
        )
    return names


def _gb_init_raw_prediction(estimator):
    """The constant raw prediction boosting starts from, one per output."""
    init = estimator.init
    if not (init is None or (isinstance(init, str) and init == "zero")):
        raise ValueError("gradient boosting with a custom init estimator is not supported")
    # The default init estimators (class priors, the mean) ignore their input.
    row = np.zeros((1, estimator.n_features_in_), dtype=np.float32)
    return [float(v) for v in estimator._raw_predict_init(row)[0]]


def _tree(tree, normalise):
    """One fitted decision tree as parallel per-node arrays."""
    t = tree.tree_
    if t.n_outputs != 1:
        raise ValueError("multi-output trees are not supported")
    value = t.value[:, 0, :]
    if normalise:
        # The same operation as DecisionTreeClassifier.predict_proba.
        total = value.sum(axis=1, keepdims=True)
        total[total == 0.0] = 1.0
        value = value / total
    return {
        "childrenLeft": t.children_left.tolist(),
        "childrenRight": t.children_right.tolist(),
        "feature": t.feature.tolist(),
        "threshold": t.threshold.tolist(),
        "value": value.tolist(),
    }


def main(argv):
    if len(argv) not in (2, 3):
        print(f"usage: {argv[0]} model.pkl [comma,separated,feature,names]", file=sys.stderr)
        return 2
    # Unpickling runs code from the file: only load models you trust.
    with open(argv[1], "rb") as f:
        estimator = pickle.load(f)
    if len(argv) == 3:
        names = [name.strip() for name in argv[2].split(",")]
    elif getattr(estimator, "feature_names_in_", None) is not None:
        names = [str(name) for name in estimator.feature_names_in_]
    else:
        print("the model has no feature_names_in_; pass the feature names", file=sys.stderr)
        return 2
    json.dump(export(estimator, names), sys.stdout, allow_nan=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
