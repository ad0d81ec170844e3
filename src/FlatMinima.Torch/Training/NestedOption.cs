using System;

namespace FlatMinima.Torch.Training;

/// <summary>
/// Names a nested record's settings as the user reaches them: an invalid <c>Padding</c> of the record held by
/// <c>Crop</c> is reported as <c>Crop.Padding</c> (the ML.NET options add their own prefix, <c>Augmentation.Crop.Padding</c>).
/// </summary>
internal static class NestedOption
{
    /// <summary>
    /// Runs <paramref name="validate"/> (nothing when null); an <see cref="ArgumentException"/> is rethrown with the
    /// parameter name <c>prefix.Name</c> (or <paramref name="prefix"/>), the same exception type and actual value, and
    /// the first sentence of the message — preceded by the full name when <paramref name="prefixMessage"/>.
    /// </summary>
    public static void Validate(string prefix, Action? validate, bool prefixMessage = false)
    {
        if (validate is null) return;
        try
        {
            validate();
        }
        catch (ArgumentException e)
        {
            string name = e.ParamName is null ? prefix : $"{prefix}.{e.ParamName}";
            string message = prefixMessage ? $"{name}: {FirstSentence(e.Message)}" : FirstSentence(e.Message);
            if (e is ArgumentOutOfRangeException range) throw new ArgumentOutOfRangeException(name, range.ActualValue, message);
            throw new ArgumentException(message, name, e);
        }
    }

    // ArgumentException appends " (Parameter 'x')" and the actual value to Message; keep the sentence only.
    private static string FirstSentence(string message)
    {
        int cut = message.IndexOf(" (Parameter '", StringComparison.Ordinal);
        return (cut >= 0 ? message[..cut] : message.Split('\n')[0]).Trim();
    }
}
