using System;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.Torch.Pretrained;
using Microsoft.ML;

namespace FlatMinima.MLNet.ImageClassification;

/// <summary>
/// <c>PretrainedBackbone.FromModel</c>: a trained FlatMinima image classifier's backbone as the <c>Backbone</c> of a new
/// task (or of <c>FlatMinimaFeaturizeImage</c>).
/// </summary>
public static class PretrainedBackboneFromModel
{
    extension(PretrainedBackbone)
    {
        /// <summary>
        /// The backbone of <paramref name="model"/>, a classifier trained on a pretrained <c>Backbone</c>
        /// (<c>ResNet18ImageNet</c> or <c>FromPyTorch</c>, or a backbone taken from such a model): its trained network
        /// without the head, with its input preparation, to fine-tune on a new task with a new head sized to the new
        /// classes (see <see cref="PretrainedBackbone.FromNetwork"/>). The weights are copied now, so the model may be
        /// disposed afterwards. The new model is saved under the same architecture name (<see cref="PretrainedBackbone.Name"/>)
        /// and loads without any file. Its default input size is the model's.
        /// </summary>
        /// <exception cref="ArgumentException">The model's network was not built on a pretrained backbone (e.g. a built-in
        /// architecture trained from random weights, whose input standardization is the data's).</exception>
        public static PretrainedBackbone FromModel(FlatMinimaImageClassificationTransformer model)
        {
            ArgumentNullException.ThrowIfNull(model);
            var classifier = model.Model;
            if (classifier.Network is not PretrainedImageNetwork network || !PretrainedBackbone.IsBackboneName(classifier.Architecture))
                throw new ArgumentException(
                    $"The model's network is '{classifier.Architecture}', not one built on a pretrained Backbone; only a model trained with " +
                    "Backbone (PretrainedBackbone.ResNet18ImageNet(), FromPyTorch(…) or FromModel(…)) can be the backbone of a new task.", nameof(model));
            return PretrainedBackbone.FromNetwork(classifier.Architecture, network, classifier.Height, classifier.Width);
        }

        /// <summary>
        /// The backbone of the FlatMinima image classifier in the model saved at <paramref name="modelPath"/> (a zip
        /// written by <c>mlContext.Model.Save</c>; the classifier may be part of a chain): see
        /// <c>FromModel(model)</c>. The loaded model is disposed once its weights
        /// are copied.
        /// </summary>
        /// <exception cref="System.IO.FileNotFoundException">There is no file at <paramref name="modelPath"/>.</exception>
        /// <exception cref="ArgumentException">The model holds no FlatMinima image classifier, or one not built on a pretrained backbone.</exception>
        public static PretrainedBackbone FromModel(MLContext mlContext, string modelPath)
        {
            ArgumentNullException.ThrowIfNull(mlContext);
            ArgumentNullException.ThrowIfNull(modelPath);
            if (!System.IO.File.Exists(modelPath))
                throw new System.IO.FileNotFoundException($"There is no model at '{modelPath}'.", modelPath);
            var loaded = mlContext.Model.Load(modelPath, out _);
            var classifiers = PretrainedBackboneFromModel.Flatten(loaded).OfType<FlatMinimaImageClassificationTransformer>().ToList();
            try
            {
                if (classifiers.Count != 1)
                    throw new ArgumentException(
                        $"The model at '{modelPath}' holds {classifiers.Count} FlatMinima image classifiers; expected one.", nameof(modelPath));
                return PretrainedBackbone.FromModel(classifiers[0]);
            }
            finally
            {
                foreach (var classifier in classifiers) classifier.Dispose();
            }
        }
    }

    private static IEnumerable<ITransformer> Flatten(ITransformer transformer)
    {
        yield return transformer;
        if (transformer is IEnumerable<ITransformer> chain)
            foreach (var inner in chain)
                foreach (var t in Flatten(inner))
                    yield return t;
    }
}
